"""Residual basic blocks as one operator (paddle_resnet/speed/fused_block.py): the values,
gradients and running statistics of the per-layer path, the same parameters and
checkpoints, Paddle's own path in evaluation, and which blocks it takes."""
import subprocess
import sys

import numpy as np
import paddle
import pytest

from conftest import ROOT, assert_fused_steps_repeat, assert_same_passes, assert_same_training
from paddle_resnet.cpu import usable_cores
from paddle_resnet.engine.step import speed_options, training_model
from paddle_resnet.models import build_model
from paddle_resnet.models.resnet import BasicBlock, make_shortcut
from paddle_resnet.speed import native_bf16, plan_speed
from paddle_resnet.speed.fused_block import (IDENTITY, OP, FusedBasicBlock, norm_inputs,
                                             use_fused_blocks)
from paddle_resnet.speed.onednn_conv import run_all, use_onednn_conv


def block_pair(fused_library, in_channels, channels, stride, option, bf16):
    blocks = []
    for _ in range(2):
        paddle.seed(0)
        shortcut = (None if option is None else
                    make_shortcut(option, in_channels, channels, stride, "NHWC"))
        block = BasicBlock(in_channels, channels, stride, shortcut, data_format="NHWC")
        norms = [block.bn1, block.bn2] + ([shortcut.bn] if option in ("B", "C") else [])
        for bn in norms:  # BN parameters away from their 1/0 initial values
            bn.weight.set_value(paddle.rand([channels]) + 0.5)
            bn.bias.set_value(0.1 * paddle.randn([channels]))
        use_onednn_conv(block, fused_library, bf16)
        blocks.append(block)
    reference, fused = blocks
    assert use_fused_blocks(fused, fused_library, bf16) == 1 and type(fused) is FusedBasicBlock
    return reference, fused


# 16 and 32 channels take the operator's passes over whole vectors, 24 and 128 (ResNet-18's
# wider stages) its loops over any channel count (basic_block.cc).
SHAPES = {"identity": (16, 16, 1, "A"), "option A, stride 2": (16, 32, 2, "A"),
          "plain (no shortcut)": (16, 16, 1, None), "plain, stride 2": (16, 32, 2, None),
          "option B, stride 2": (16, 32, 2, "B"), "option C": (16, 16, 1, "C"),
          "identity, 24 channels": (24, 24, 1, "A"), "option B, 24 channels": (16, 24, 2, "B"),
          "identity, 128 channels": (128, 128, 1, "A"),
          "option B, 128 channels": (64, 128, 2, "B")}


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_values_gradients_and_running_statistics_equal_the_per_layer_path(fused_library, shape,
                                                                          bf16):
    if bf16 and not native_bf16():
        pytest.skip("oneDNN emulates bf16 without AVX-512 BF16 or AMX")
    in_channels, channels, stride, option = SHAPES[shape]
    reference, fused = block_pair(fused_library, in_channels, channels, stride, option, bf16)
    # float32: the two paths differ only in the order of BN's sums; bf16: both round the
    # same convolution inputs, which leaves differences of bf16's rounding where BN's
    # float32 sums round a value across a bf16 boundary (measured 5e-6 to 2e-4).
    tolerance = 2e-3 if bf16 else 1e-5
    assert_same_passes(reference, fused, [4, 8, 8, in_channels], tolerance)


@pytest.mark.parametrize("channels", [16, 64, 128, 24])
def test_the_forward_passes_round_each_operation_as_written(fused_library, channels):
    """BN's scale and shift, the residual add and the ReLUs as NumPy's float32 computes
    them, bit for bit: each product and sum rounded on its own (no fused multiply-add), in
    the passes over whole vectors (16, 64 channels) and over any count (24, 128) alike."""
    _, block = block_pair(fused_library, channels, channels, 1, "A", bf16=False)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal([4, 8, 8, channels]),
                         "float32")
    y, _, t1, a1, t2, stats = run_all(
        OP, x, block.conv1.weight, *norm_inputs(block.bn1), block.conv2.weight,
        *norm_inputs(block.bn2), 1, IDENTITY, 0, float(block.bn1._epsilon),
        float(block.bn1._momentum), False)
    mean1, inv_std1, scale1, shift1, mean2, inv_std2 = stats.numpy()[:6]
    np.testing.assert_array_equal(scale1, block.bn1.weight.numpy() * inv_std1)
    np.testing.assert_array_equal(shift1, block.bn1.bias.numpy() - mean1 * scale1)

    def relu(v):  # std::max(v, 0.0f)
        return np.where(v < 0, np.float32(0), v)

    np.testing.assert_array_equal(a1.numpy(), relu(t1.numpy() * scale1 + shift1))
    scale2 = block.bn2.weight.numpy() * inv_std2
    shift2 = block.bn2.bias.numpy() - mean2 * scale2
    np.testing.assert_array_equal(y.numpy(), relu(t2.numpy() * scale2 + shift2 + x.numpy()))


def test_evaluation_takes_the_per_layer_path(fused_library):
    reference, fused = block_pair(fused_library, 16, 32, 2, "A", bf16=False)
    reference.eval(), fused.eval()
    x = paddle.randn([4, 8, 8, 16])
    np.testing.assert_array_equal(fused(x).numpy(), reference(x).numpy())


@pytest.mark.parametrize("name, fused_blocks", [("resnet20", 9), ("plain20", 9),
                                                ("resnet18", 8), ("resnet50", 0)])
def test_which_blocks_it_takes_and_the_checkpoint_keys(fused_library, name, fused_blocks):
    """Every basic block (identity, option A, none, projections), no bottleneck."""
    plan = plan_speed(speed_options(["fused_block=true"]), "cpu", 2)
    model = training_model(name, plan)
    found = sum(type(layer) is FusedBasicBlock for layer in model.sublayers())
    assert found == fused_blocks
    assert list(model.state_dict()) == list(build_model(name).state_dict())
    assert ("basic blocks: one operator each" in plan.describe()) is True
    # the run header describes the plan as applied: a model without basic blocks says none
    assert model.speed_paths["fused_block"] == fused_blocks
    assert (("basic blocks: one operator each" in plan.as_applied(model.speed_paths).describe())
            is (fused_blocks > 0))


def test_resnet20_trains_the_same_steps_as_the_per_layer_path(fused_library):
    """Three steps of the package's train_step in float32: the loss and the weights of the
    fused model stay those of the per-layer model to float32 rounding."""
    models = {}
    for key, fused in (("fused", "true"), ("per_layer", "false")):
        plan = plan_speed(speed_options([f"fused_block={fused}", "conv_bf16=false"]), "cpu", 2)
        paddle.seed(0)
        models[key] = training_model("resnet20", plan)
    # Steps amplify float32 rounding (BN's sums in another order): the third loss
    # measured 1.4e-5 apart, the weights as test_onednn_norm.py's.
    assert_same_training(models, loss_rtol=1e-4, weight_atol=1e-3)


@pytest.mark.parametrize("bf16", ["true", "false"], ids=["default", "float32"])
def test_the_fused_resnet_steps_repeat_bit_for_bit(fused_library, bf16):
    """What exact resume rests on, for the fused blocks with bf16 inputs (where the CPU has
    them) and in float32 (the default where it has not)."""
    assert_fused_steps_repeat("resnet20", bf16)


def test_the_fused_resnet_steps_repeat_bit_for_bit_with_every_core_as_threads(fused_library):
    """The same in one process with the cores as threads (--nproc 1, the library's train),
    where oneDNN's convolutions split their work between threads; in a process of its own,
    as such a run is."""
    script = ("import sys; sys.path.insert(0, 'tests'); "
              "from conftest import assert_fused_steps_repeat; "
              "assert_fused_steps_repeat('resnet20', 'true', processes=1); print('same bits')")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("same bits"), \
        done.stderr[-3000:]


# One default training step from fixed weights and a batch, under a plan for each number
# of processes in argv[3:] in turn (the cores split into threads); the weights after the
# last saved to argv[1].
STEPS_UNDER_PLANS = """
import sys
import numpy as np
import paddle
from paddle_resnet.engine.step import speed_options, train_step, training_model
from paddle_resnet.speed import plan_speed
for processes in sys.argv[3:]:
    plan = plan_speed(speed_options([]), "cpu", int(processes))
    paddle.seed(0)
    model = training_model(sys.argv[2], plan)
    rng = np.random.default_rng(0)
    images = paddle.to_tensor(rng.standard_normal((16, 32, 32, 3)).astype("float32"))
    labels = paddle.to_tensor(rng.integers(0, 10, 16))
    optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    train_step(model, images, labels, optimizer)
np.savez(sys.argv[1], **{k: v.numpy() for k, v in model.state_dict().items()})
"""


@pytest.mark.parametrize("name", ["resnet20", "densenet40_k12"])
def test_a_process_whose_thread_count_changed_trains_as_a_fresh_one(fused_library, tmp_path,
                                                                    name):
    """oneDNN splits a primitive's work by the threads there are when it makes it, and the
    operators keep their primitives: a library user's second run in a process, with other
    threads than the first, once rounded as the first (17 of ResNet-20's 97 tensors off by
    up to 6e-8 after a step); the thread count is now part of the primitives' key."""
    if usable_cores() < 2:
        pytest.skip("needs two cores to change the threads per process")
    weights = {}
    for label, plans in (("one thread, then two", ["2", "1"]), ("two", ["1"])):
        path = tmp_path / f"{len(plans)}.npz"
        done = subprocess.run([sys.executable, "-c", STEPS_UNDER_PLANS, str(path), name, *plans],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        weights[label] = np.load(path)
    first, fresh = weights.values()
    assert [k for k in fresh if not np.array_equal(first[k], fresh[k])] == []


@pytest.mark.parametrize("native", [True, False])
def test_the_default_fuses_bf16_or_not_with_any_thread_count(fused_library, monkeypatch,
                                                             native):
    """Every fused operator with bf16 inputs and in float32 (measured in AVX2 code: 1.08x
    ResNet-20's step, 1.32x DenseNet-40's), with one thread per process or two in one
    (1.42x and 1.62x; docs/performance.md)."""
    import paddle_resnet.speed as speed
    monkeypatch.setattr(speed, "native_bf16", lambda: native)
    assert plan_speed(speed_options(), "cpu", usable_cores()).fused_block
    several_threads = plan_speed(speed_options(), "cpu", 1)
    assert several_threads.fused_block and several_threads.threads == usable_cores()
    assert plan_speed(speed_options(["conv_bf16=false"]), "cpu", 2).fused_block
    assert not plan_speed(speed_options(["fused_block=false"]), "cpu", 2).fused_block
    asked = plan_speed(speed_options(["fused_block=true", "conv_bf16=false"]), "cpu", 2)
    assert asked.fused_block and asked.note == ""
    on_paddle = plan_speed(speed_options(["conv=paddle"]), "cpu", 2)  # nothing asked: no note
    assert not on_paddle.fused_block and on_paddle.note == ""


def test_without_the_onednn_convolution_it_says_why_in_one_line():
    plan = plan_speed(speed_options(["fused_block=true", "conv=paddle"]), "cpu", 2)
    assert not plan.fused_block
    assert plan.note == ("speed.fused_block needs the oneDNN convolution (speed.conv=paddle "
                         "here); using the per-layer path")
