import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from conftest import ROOT

from paddle_resnet.models import (BasicBlock, ResNet, ShortcutA, UnknownModelError,
                                  build_model, count_flops, count_parameters, list_models,
                                  make_layer, register_model)

# He et al. 2016 and the standard reproductions (akamaster for CIFAR, kuangliu for the
# 32x32 ImageNet-style nets and DenseNet-121), 10 classes.
PUBLISHED_PARAMS = {
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962, "resnet1202": 19_421_274, "resnet18": 11_173_962,
    "resnet34": 21_282_122, "resnet50": 23_520_842, "resnet101": 42_512_970,
    "resnet152": 58_156_618, "densenet_bc_100_k12": 769_162, "densenet40_k12": 1_019_722,
    "densenet121": 6_956_298,
}
REQUIRED_NAMES = set(PUBLISHED_PARAMS) | {
    "resnet9", "plain18", "plain34", "plain20", "plain32", "plain44", "plain56", "plain110",
    "simple_cnn"}
FAMILY_DEPTH = {"cifar_resnet": 26, "cifar_plain": 26}


def build(name, **kwargs):
    if name in FAMILY_DEPTH:
        kwargs["depth"] = FAMILY_DEPTH[name]
    return build_model(name, **kwargs)


def test_registry_has_every_required_name():
    assert REQUIRED_NAMES <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    paddle.seed(0)
    model = build(name)
    x = paddle.randn([2, 3, 32, 32])
    out = model(x)
    assert out.shape == [2, 10]
    assert np.isfinite(out.numpy()).all()
    out.sum().backward()
    missing = [p.name for p in model.parameters()
               if not p.stop_gradient and p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_count_matches_published(name):
    count = count_parameters(build(name))
    assert abs(count - PUBLISHED_PARAMS[name]) <= 0.005 * PUBLISHED_PARAMS[name], count


@pytest.mark.parametrize("name", list_models())
def test_num_classes_100(name):
    model = build(name, num_classes=100)
    assert model.fc.weight.shape[1] == 100


def test_cifar100_forward():
    assert build_model("resnet56", num_classes=100)(paddle.randn([2, 3, 32, 32])).shape == [2, 100]


def test_option_a_shortcuts_have_no_parameters():
    model = build_model("resnet20")
    shortcuts = [layer for layer in model.sublayers() if isinstance(layer, ShortcutA)]
    assert len(shortcuts) == 2  # the two stage transitions 16->32 and 32->64
    assert all(not layer.parameters() for layer in shortcuts)


def test_option_a_pads_zeros_and_subsamples():
    shortcut = ShortcutA(2, 4, stride=2)
    x = paddle.arange(2 * 4 * 4, dtype="float32").reshape([1, 2, 4, 4]) + 1
    out = shortcut(x).numpy()
    assert out.shape == (1, 4, 2, 2)
    np.testing.assert_array_equal(out[0, 1:3], x.numpy()[0, :, ::2, ::2])
    assert (out[0, 0] == 0).all() and (out[0, 3] == 0).all()


@pytest.mark.parametrize("plain, residual", [
    ("plain20", "resnet20"), ("plain32", "resnet32"), ("plain44", "resnet44"),
    ("plain56", "resnet56"), ("plain110", "resnet110"), ("plain18", "resnet18"),
    ("plain34", "resnet34")])
def test_plain_twin_matches_option_a_resnet(plain, residual):
    assert count_parameters(build_model(plain)) == count_parameters(
        build_model(residual, shortcut="A"))


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50", "densenet_bc_100_k12",
                                  "simple_cnn"])
def test_channels_last_is_the_same_function_with_the_same_weights(name):
    """NHWC models take the same NCHW input and state dict and give the same logits and
    gradients; in float64, so that only a wrong layout, not rounding, could differ."""
    paddle.set_default_dtype("float64")
    try:
        paddle.seed(0)
        nchw, nhwc = build_model(name), build_model(name, data_format="NHWC")
        assert list(nhwc.state_dict()) == list(nchw.state_dict())
        nhwc.set_state_dict(nchw.state_dict())
        images = paddle.to_tensor(np.random.default_rng(0).standard_normal((4, 3, 32, 32)))
        logits = []
        for model in (nchw, nhwc):
            logits.append(model(images))
            (logits[-1] ** 2).mean().backward()
        np.testing.assert_allclose(logits[1].numpy(), logits[0].numpy(), rtol=1e-10)
        trained = [(a, b) for a, b in zip(nchw.parameters(), nhwc.parameters())
                   if not a.stop_gradient]  # Paddle lists BN statistics as parameters too
        assert trained
        for a, b in trained:
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-8, atol=1e-12)
    finally:
        paddle.set_default_dtype("float32")


def test_unknown_data_format_lists_the_choices():
    with pytest.raises(ValueError, match="data_format must be one of NCHW, NHWC, got 'NWHC'"):
        build_model("resnet20", data_format="NWHC")


def test_shortcut_options_b_and_c():
    a, b, c = (count_parameters(build_model("resnet20", shortcut=o)) for o in "ABC")
    assert a < b < c
    # B projects only at the two transitions: conv 1x1 + BN (weight, bias) each.
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_make_layer_first_block_carries_stride_and_width():
    layer = make_layer(BasicBlock, 16, 32, 3, stride=2, shortcut="B")
    out = layer(paddle.randn([1, 16, 8, 8]))
    assert out.shape == [1, 32, 4, 4]
    assert layer[0].conv1._stride == [2, 2]
    assert all(block.conv1._stride == [1, 1] for block in list(layer)[1:])
    assert isinstance(layer[1].shortcut, paddle.nn.Identity)


def test_zero_init_residual_zeroes_last_bn():
    model = build_model("resnet50", zero_init_residual=True)
    assert float(model.layer1[0].bn3.weight.abs().sum()) == 0.0
    assert float(model.layer1[0].bn1.weight.abs().sum()) > 0.0


def test_he_initialisation():
    conv = build_model("resnet110").layer3[0].conv2.weight.numpy()
    fan_in = conv.shape[1] * 9
    assert abs(conv.std() - (2 / fan_in) ** 0.5) < 0.1 * (2 / fan_in) ** 0.5


@pytest.mark.parametrize("depth", [7, 21, 0, 19])
def test_invalid_cifar_depth_is_clear(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        build_model("cifar_resnet", depth=depth)


def test_any_6n_plus_2_depth():
    assert count_parameters(build_model("cifar_resnet", depth=20)) == 269_722
    assert build_model("cifar_resnet", depth=74).layer1.__len__() == 12


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownModelError, match="did you mean resnet56"):
        build_model("resnet65")


def test_unexpected_argument_named():
    with pytest.raises(ValueError, match="densenet121.*shortcut"):
        build_model("densenet121", shortcut="A")


def test_none_arguments_keep_defaults():
    assert count_parameters(build_model("resnet20", shortcut=None)) == 269_722


def test_duplicate_registration_raises():
    def resnet20():
        return ResNet(BasicBlock, [1, 1, 1])
    with pytest.raises(ValueError, match="registered twice"):
        register_model(resnet20)


def test_flops_match_paper():
    # He et al. Sec. 4.2 / Table 6 era reproductions: ResNet-20 ~41M multiply-adds.
    assert 40e6 < count_flops(build_model("resnet20")) < 42e6
    assert count_flops(build_model("resnet56")) > 3 * count_flops(build_model("resnet20"))


def test_summary_tool_prints_table():
    from conftest import run_tool
    result = run_tool("summary", "resnet20", "densenet_bc_100_k12")
    assert result.returncode == 0, result.stderr
    assert "| resnet20 | 269,722 | 40.6M |" in result.stdout
    assert "| densenet_bc_100_k12 | 769,162 |" in result.stdout
    bad = run_tool("summary", "resnet65")
    assert bad.returncode == 2 and "did you mean resnet56" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


NEW_MODEL = '''
import paddle.nn as nn

from .registry import register_model


@register_model(family="mlp", reference="a test's own model")
def tiny_mlp(num_classes: int = 10, hidden: int = 32, data_format: str = "NCHW"):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
'''

PROBE = '''
from paddle_resnet.config import load_config
from paddle_resnet.models import list_models
from paddle_resnet.models.summary import format_table, summarize
cfg = load_config(None, ["model.name=tiny_mlp", "model.kwargs.hidden=8"])
assert cfg.model_kwargs()["hidden"] == 8
print("tiny_mlp" in list_models())
print(format_table(summarize()).splitlines()[-1])
'''


def test_a_model_in_a_new_file_is_known_everywhere_without_another_edit(tmp_path):
    import shutil
    shutil.copytree(os.path.join(ROOT, "paddle_resnet"), tmp_path / "paddle_resnet",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "paddle_resnet" / "models" / "tiny_mlp.py").write_text(NEW_MODEL)
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                           cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                           timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    known, last_row = probe.stdout.splitlines()[-2:]
    assert known == "True"
    # after every family in FAMILY_ORDER; its extra argument listed for model.kwargs
    assert last_row == "| tiny_mlp | 98,666 | 0.1M | a test's own model | hidden |"
