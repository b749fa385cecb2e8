"""The oneDNN convolution (paddle_resnet/speed/onednn_conv.py): forward and both gradients
equal Paddle's for every convolution the zoo uses, the same parameters and checkpoints,
Paddle's path under static graphs, and one line for every reason it cannot run."""
import os
from dataclasses import replace
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from conftest import ROOT, quickstart_args, run_tool
from paddle_resnet.engine.step import speed_options, train_step, training_model
from paddle_resnet.errors import ConfigError
from paddle_resnet.models import build_model
from paddle_resnet.models.resnet import ShortcutA
from paddle_resnet.speed import native_bf16, onednn_build, plan_speed
from paddle_resnet.speed.onednn_conv import (OneDNNConv2D, OneDNNShortcutA, register,
                                             use_onednn_conv)
from paddle_resnet.user_cache import CACHE_VARIABLE


@pytest.fixture(scope="module")
def library():
    plan = plan_speed(speed_options(), "cpu", 2)
    if plan.conv != "onednn":
        pytest.fail(f"the oneDNN convolution should build on this machine: {plan.note}")
    return plan.library


def conv_pair(in_channels, out_channels, kernel, stride, padding, bias):
    paddle.seed(0)
    make = lambda: nn.Conv2D(in_channels, out_channels, kernel, stride=stride,  # noqa: E731
                             padding=padding, data_format="NHWC",
                             bias_attr=None if bias else False)
    plain, switched = make(), make()
    switched.set_state_dict(plain.state_dict())
    return plain, switched


def outputs_and_grads(layer, x_np, x_needs_grad=True):
    x = paddle.to_tensor(x_np, stop_gradient=not x_needs_grad)
    out = layer(x)
    # An output gradient that differs at every position.
    (out * paddle.arange(out.size, dtype="float32").reshape(out.shape).sin()).sum().backward()
    found = {"out": out.numpy(), "weight": layer.weight.grad.numpy()}
    if x_needs_grad:
        found["x"] = x.grad.numpy()
    if layer.bias is not None:
        found["bias"] = layer.bias.grad.numpy()
    return found


# (in, out, kernel, stride, padding, bias): the zoo's 3x3 and 1x1 layers, stride 1 and 2,
# the stem's 3 input channels, odd sizes, asymmetric and "valid" padding, a bias.
LAYERS = [(16, 16, 3, 1, 1, False), (16, 32, 3, 2, 1, False), (3, 16, 3, 1, 1, False),
          (64, 128, 1, 2, 0, False), (48, 12, 1, 1, 0, False), (7, 5, 3, 2, 1, True),
          (4, 6, 3, 1, [1, 0, 2, 1], True), (4, 6, 3, 1, "valid", False),
          (4, 6, 5, 1, [2, 1], False)]


@pytest.mark.parametrize("in_channels,out_channels,kernel,stride,padding,bias", LAYERS)
def test_forward_and_gradients_equal_paddles(library, in_channels, out_channels, kernel,
                                             stride, padding, bias):
    plain, switched = conv_pair(in_channels, out_channels, kernel, stride, padding, bias)
    assert use_onednn_conv(switched, library) == 1 and type(switched) is OneDNNConv2D
    x_np = np.random.default_rng(1).standard_normal([3, 11, 9, in_channels]).astype("float32")
    expected, found = outputs_and_grads(plain, x_np), outputs_and_grads(switched, x_np)
    for key in expected:
        assert found[key].shape == expected[key].shape, key
        scale = np.abs(expected[key]).max()
        np.testing.assert_allclose(found[key], expected[key], rtol=0, atol=1e-5 * scale,
                                   err_msg=key)


@pytest.mark.parametrize("in_channels,out_channels,kernel,stride,padding,bias", LAYERS[:5])
def test_bf16_rounds_training_convolutions_to_bfloat16_precision(
        library, in_channels, out_channels, kernel, stride, padding, bias):
    """speed.conv_bf16: forward and both gradients within bfloat16's rounding of Paddle's
    float32 (8 bits of mantissa: ~4e-3 relative per input, averaged over a sum), but
    rounded (not float32's 1e-5); in eval mode, float32 again."""
    if not native_bf16():
        pytest.skip("this CPU has no AVX-512 BF16 (the plan convolves in float32)")
    plain, switched = conv_pair(in_channels, out_channels, kernel, stride, padding, bias)
    use_onednn_conv(switched, library, bf16=True)
    x_np = np.random.default_rng(1).standard_normal([3, 11, 9, in_channels]).astype("float32")
    expected, found = outputs_and_grads(plain, x_np), outputs_and_grads(switched, x_np)
    for key in expected:
        error = np.abs(found[key] - expected[key]).max() / np.abs(expected[key]).max()
        assert 1e-5 < error < 2e-2 or key == "bias", (key, error)
    switched.eval()
    plain.eval()
    x = paddle.to_tensor(x_np)
    np.testing.assert_allclose(switched(x).numpy(), plain(x).numpy(), rtol=0,
                               atol=1e-5 * np.abs(expected["out"]).max())


def test_bf16_without_native_support_convolves_in_float32_saying_why(monkeypatch):
    import paddle_resnet.speed as speed
    monkeypatch.setattr(speed, "native_bf16", lambda: False)
    plan = plan_speed(speed_options(["conv_bf16=true"]), "cpu", 2)
    assert plan.conv == "onednn" and not plan.bf16
    monkeypatch.setattr(speed, "vector_extension", lambda: "AVX2")
    plan = plan_speed(speed_options(["conv_bf16=true"]), "cpu", 2)
    assert plan.note == ("speed.conv_bf16 needs a CPU with AVX-512 BF16 or AMX (this one has "
                         "AVX2; emulated bf16 is slower than float32); convolving in float32")
    assert "bf16" not in plan.describe()
    monkeypatch.setattr(speed, "native_bf16", lambda: True)
    assert "(bf16 inputs)" in plan_speed(speed_options(["conv_bf16=true"]), "cpu", 2).describe()


@pytest.mark.parametrize("native", [True, False])
def test_the_default_takes_bf16_exactly_where_the_cpu_has_its_kernels(monkeypatch, native):
    import paddle_resnet.speed as speed
    monkeypatch.setattr(speed, "native_bf16", lambda: native)
    plan = plan_speed(speed_options(), "cpu", 2)
    assert plan.bf16 == native
    # the default falls back to float32 where it cannot take bf16, and says so
    assert (plan.note == "") == native
    assert native or plan.note.startswith("speed.conv_bf16 needs a CPU with AVX-512 BF16")
    for choice in (["conv_bf16=false"], ["conv=paddle"]):  # asked for float32: nothing to say
        plan = plan_speed(speed_options(choice), "cpu", 2)
        assert not plan.bf16 and plan.note == ""


@pytest.mark.parametrize("extension, says", [
    ("AVX2", "(this one has AVX2; emulated"),
    ("", "(emulated"),
    ("AVX-512 BF16", "(this one has AVX-512 BF16, which this Paddle build does not use; ")])
def test_the_bf16_note_names_what_the_cpu_has(extension, says):
    from paddle_resnet.speed import bf16_unavailable
    note = bf16_unavailable(extension)
    assert says in note and note.endswith("; convolving in float32")


def test_an_input_without_gradient_gets_only_the_weight_gradient(library):
    plain, switched = conv_pair(3, 16, 3, 1, 1, False)
    use_onednn_conv(switched, library)
    x_np = np.random.default_rng(2).standard_normal([2, 8, 8, 3]).astype("float32")
    expected = outputs_and_grads(plain, x_np, x_needs_grad=False)
    found = outputs_and_grads(switched, x_np, x_needs_grad=False)
    np.testing.assert_allclose(found["weight"], expected["weight"], rtol=1e-5, atol=1e-5)


def test_layers_it_does_not_cover_keep_paddles_kernel(library):
    layers = [nn.Conv2D(4, 4, 3, padding=1),  # NCHW
              nn.Conv2D(4, 4, 3, padding=1, groups=2, data_format="NHWC"),
              nn.Conv2D(4, 4, 3, padding=2, dilation=2, data_format="NHWC"),
              nn.Conv2D(4, 4, 3, padding=1, padding_mode="reflect", data_format="NHWC"),
              nn.Conv2D(4, 4, 3, padding="same", data_format="NHWC")]
    for layer in layers:
        assert use_onednn_conv(layer, library) == 0 and type(layer) is nn.Conv2D


def test_option_a_shortcut_is_exactly_the_slice_and_pad(library):
    plain, switched = ShortcutA(16, 32, 2, "NHWC"), ShortcutA(16, 32, 2, "NHWC")
    assert use_onednn_conv(switched, library) == 1 and type(switched) is OneDNNShortcutA
    assert switched.state_dict().keys() == plain.state_dict().keys()
    x = paddle.randn([3, 9, 9, 16])
    x.stop_gradient = False
    out_plain, out_switched = plain(x), switched(x)
    grad = paddle.randn(out_plain.shape)
    (grad_plain,) = paddle.grad([out_plain], [x], [grad])
    (grad_switched,) = paddle.grad([out_switched], [x], [grad])
    np.testing.assert_array_equal(out_switched.numpy(), out_plain.numpy())
    np.testing.assert_array_equal(grad_switched.numpy(), grad_plain.numpy())


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "densenet40_k12", "plain20"])
def test_a_zoo_model_keeps_its_parameters_and_computes_the_same(library, name):
    """The NHWC oneDNN model of training has the plain NCHW model's state_dict names and
    shapes, takes its weights, and computes its logits; a training step gives its loss.
    (Gradients are checked layer by layer above: through a whole freshly initialised net
    in training mode, batch statistics amplify any change in the order of sums, and
    Paddle's own NHWC and NCHW gradients already differ by ~1% of a layer's largest.)
    In float32: bf16's rounding is checked layer by layer above."""
    plan = plan_speed(speed_options(["conv_bf16=false"]), "cpu", 2)
    paddle.seed(0)
    reference = build_model(name)
    switched = training_model(name, plan, input_format="NCHW")
    assert any(type(layer) is OneDNNConv2D for layer in switched.sublayers())
    ref_state, new_state = reference.state_dict(), switched.state_dict()
    assert list(ref_state) == list(new_state)
    assert all(ref_state[k].shape == new_state[k].shape for k in ref_state)
    switched.set_state_dict(ref_state)
    images = paddle.to_tensor(np.random.default_rng(3).standard_normal([8, 3, 32, 32]),
                              "float32")
    labels = paddle.to_tensor(np.arange(8))
    for model in (reference, switched):
        model.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(switched(images).numpy(), reference(images).numpy(),
                                   rtol=1e-4, atol=1e-4)
    losses = []
    for model in (reference, switched):
        model.train()
        optimizer = paddle.optimizer.Momentum(0.05, parameters=model.parameters())
        losses.append(float(train_step(model, images, labels, optimizer)[0]))
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_static_graphs_take_paddles_kernel(library, tmp_path):
    """Export (paddle.jit.save) traces the model: the switched layers fall back."""
    plan = plan_speed(speed_options(), "cpu", 2)
    model = training_model("resnet20", plan, input_format="NCHW")
    model.eval()
    images = paddle.randn([2, 3, 32, 32])
    expected = model(images).numpy()
    static = paddle.jit.to_static(model, full_graph=True)
    np.testing.assert_allclose(static(images).numpy(), expected, rtol=1e-4, atol=1e-4)


# --- building and falling back ----------------------------------------------------------

def test_a_gpu_never_takes_it():
    assert "CPU operator" in onednn_build.unavailable_reason("gpu:0")


def fake_headers(folder, version):
    dnnl = folder / "oneapi" / "dnnl"
    dnnl.mkdir(parents=True)
    (dnnl / "dnnl.hpp").write_text("// a stand-in\n")
    major, minor, patch = version
    (dnnl / "dnnl_version.h").write_text(f"#define DNNL_VERSION_MAJOR {major}\n"
                                         f"#define DNNL_VERSION_MINOR {minor}\n"
                                         f"#define DNNL_VERSION_PATCH {patch}\n")
    return str(folder)


def test_headers_newer_than_paddles_library_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(onednn_build.INCLUDE_VARIABLE, fake_headers(tmp_path, (9, 9, 9)))
    reason = onednn_build.unavailable_reason("cpu")
    assert "(9.9.9) are newer than Paddle's library" in reason and "onednn-devel" in reason


def test_missing_headers_name_the_package(monkeypatch):
    monkeypatch.setattr(onednn_build, "include_dir", lambda: None)
    assert "pip install onednn-devel" in onednn_build.unavailable_reason("cpu")


def test_no_compiler_and_no_python_headers_are_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))  # nothing built here
    monkeypatch.setattr(onednn_build, "_compiler", lambda: None)
    assert onednn_build.unavailable_reason("cpu") == "no C++ compiler was found (install g++)"
    monkeypatch.setattr(onednn_build, "_compiler", lambda: "g++")
    real = onednn_build.sysconfig.get_paths
    monkeypatch.setattr(onednn_build.sysconfig, "get_paths",
                        lambda: dict(real(), include=str(tmp_path / "none")))
    assert "Python headers are missing" in onednn_build.unavailable_reason("cpu")


def test_auto_falls_back_with_the_reason_and_onednn_refuses(monkeypatch):
    monkeypatch.setattr(onednn_build, "unavailable_reason", lambda place: "no C++ compiler")
    plan = plan_speed(speed_options(), "cpu", 2)
    assert plan.conv == "paddle" and plan.data_format == "NCHW" and plan.conv_input_grad
    assert plan.note == "oneDNN convolution unavailable: no C++ compiler; using Paddle's"
    with pytest.raises(ConfigError, match=r"speed.conv = onednn, but no C\+\+ compiler"):
        plan_speed(speed_options(["conv=onednn"]), "cpu", 2)


def test_speed_conv_paddle_is_todays_path():
    plan = plan_speed(speed_options(["conv=paddle"]), "cpu", 2)
    assert (plan.conv, plan.data_format, plan.note) == ("paddle", "NCHW", "")


def test_a_failed_compile_falls_back_and_names_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))

    def broken(target):
        raise onednn_build.BuildFailed("compiling the oneDNN operators failed (exit status "
                                       "1); the compiler's output is in build.log")
    monkeypatch.setattr(onednn_build, "_compile", broken)
    said = []
    plan = plan_speed(speed_options(), "cpu", 2, say=said.append)
    assert plan.conv == "paddle" and "compiler's output is in build.log" in plan.note
    assert len(said) == 1 and said[0].startswith("compiling the oneDNN operators once")


@pytest.mark.slow
def test_processes_starting_at_once_compile_it_once(tmp_path):
    """Three processes plan a run against an empty cache at the same moment: one compiles
    (one line), the others wait on the lock and load what it built."""
    script = ("import sys; from paddle_resnet.speed import plan_speed; "
              "from paddle_resnet.engine.step import speed_options; "
              "p = plan_speed(speed_options(), 'cpu', 2); print('conv', p.conv)")
    env = dict(os.environ, **{CACHE_VARIABLE: str(tmp_path)})
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(out.strip().endswith("conv onednn") for out in outputs)
    assert sum(out.count("compiling the oneDNN operators once") for out in outputs) == 1
    built = list(tmp_path.glob("onednn/*/*.so"))
    assert len(built) == 1 and (built[0].parent / "build.log").is_file()


@pytest.mark.slow
def test_a_run_that_cannot_build_it_still_trains_saying_why(tiny_cifar10, tmp_path):
    env = dict(os.environ, **{onednn_build.INCLUDE_VARIABLE: fake_headers(tmp_path / "h",
                                                                          (9, 9, 9))})
    done = run_tool("train", *quickstart_args(tiny_cifar10, tmp_path / "run",
                                              "train.epochs=1"), "--nproc", "1", env=env)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stdout.splitlines() if "oneDNN convolution unavailable" in line]
    assert len(notes) == 1 and "are newer than Paddle's library" in notes[0]
    assert "convolution: Paddle's" in done.stdout


def test_a_strided_view_input_gets_its_gradient(library):
    """A transposed batch that needs a gradient gets Paddle's."""
    plain, switched = conv_pair(4, 6, 3, 1, 1, False)
    use_onednn_conv(switched, library)
    x_np = np.random.default_rng(4).standard_normal([2, 4, 7, 7]).astype("float32")
    grads = []
    for layer in (plain, switched):
        x = paddle.to_tensor(x_np, stop_gradient=False)
        layer(paddle.transpose(x, [0, 2, 3, 1])).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cap, target, bf16", [
    ("", "clones", True), ("AVX512_CORE_BF16", "clones", True), ("avx512_core_amx", "clones", True),
    ("AVX512_CORE", "clones", False), ("AVX2", "avx2", False), ("AVX2_VNNI", "avx2", False),
    ("AVX", "baseline", False), ("SSE41", "baseline", False), ("avx2", "avx2", False),
    ("DEFAULT", "clones", True), (" AVX2", "clones", True), ("AVX2X", "clones", True)])
def test_onednns_isa_cap_caps_the_operators_passes_and_bf16(monkeypatch, cap, target, bf16):
    """ONEDNN_MAX_CPU_ISA (oneDNN's documented cap) also picks the vector code the package's
    own passes are compiled for, in a build of its own, and whether bf16 is native; a
    value oneDNN does not know caps nothing, as in oneDNN."""
    assert onednn_build.vector_target(cap) == target
    assert onednn_build.cap_allows_bf16(cap) is bf16
    for variable in onednn_build.ISA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    uncapped = onednn_build.cache_key()
    monkeypatch.setenv(onednn_build.ISA_VARIABLE, cap)
    assert (onednn_build.cache_key() == uncapped) is (target == "clones")
    if not bf16:
        assert not native_bf16()


def test_the_bf16_note_names_the_cap_that_leaves_no_bf16_kernels(monkeypatch):
    from paddle_resnet.speed import bf16_unavailable
    monkeypatch.setenv(onednn_build.ISA_VARIABLE, "AVX2")
    assert bf16_unavailable("AVX-512 BF16") == (
        "speed.conv_bf16 needs a CPU with AVX-512 BF16 or AMX (this one has AVX-512 BF16, and "
        "ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN below those kernels; emulated bf16 is slower "
        "than float32); convolving in float32")


# The instruction set Paddle's own libdnnl settles on under the environment it runs in.
EFFECTIVE_ISA = """
import ctypes, glob, importlib.util, os
libs = os.path.join(importlib.util.find_spec("paddle").submodule_search_locations[0], "libs")
print(ctypes.CDLL(glob.glob(os.path.join(libs, "libdnnl.so*"))[0]).dnnl_get_effective_cpu_isa())
"""


def effective_isa(caps: dict) -> int:
    env = {k: v for k, v in os.environ.items() if k not in onednn_build.ISA_VARIABLES}
    done = subprocess.run([sys.executable, "-c", EFFECTIVE_ISA], env=dict(env, **caps),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout)


@pytest.mark.parametrize("caps", [
    {}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"ONEDNN_MAX_CPU_ISA": "avx512_core"},
    {"ONEDNN_MAX_CPU_ISA": " AVX2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2X"},
    {"DNNL_MAX_CPU_ISA": "AVX2"}, {"ONEDNN_MAX_CPU_ISA": "", "DNNL_MAX_CPU_ISA": "SSE41"},
    {"ONEDNN_MAX_CPU_ISA": "AVX2X", "DNNL_MAX_CPU_ISA": "AVX2"},
    {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI", "DNNL_MAX_CPU_ISA": "AVX"}])
def test_the_package_reads_the_isa_cap_as_paddles_onednn_does(monkeypatch, caps):
    """The cap the package compiles its passes and picks bf16 for is the one oneDNN itself
    takes from the same environment: its two variables, its names, any other value none."""
    for variable in onednn_build.ISA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in caps.items():
        monkeypatch.setenv(variable, value)
    read = onednn_build.isa_cap()
    assert effective_isa(caps) == effective_isa({"ONEDNN_MAX_CPU_ISA": read[1]} if read else {})
    if read:
        assert read == next((k, v) for k, v in caps.items() if v)


def test_the_speed_line_and_so_a_checkpoint_name_oneDNNs_isa_cap(monkeypatch):
    """A capped run's kernels round otherwise: the arithmetic a checkpoint records (and a
    resume compares) says so."""
    from paddle_resnet.speed import _isa_cap
    for variable in onednn_build.ISA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    plan = plan_speed(speed_options(["conv_bf16=false"]), "cpu", 2)
    assert plan.isa_cap == "" and "capped" not in plan.arithmetic()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert _isa_cap("onednn") == "ONEDNN_MAX_CPU_ISA=avx2" and _isa_cap("paddle") == ""
    capped = replace(plan, isa_cap=_isa_cap("onednn")).arithmetic()
    assert capped == plan.arithmetic().replace(
        "convolution: oneDNN", "convolution: oneDNN, capped by ONEDNN_MAX_CPU_ISA=avx2")


def test_a_second_build_of_the_operators_is_refused_not_an_abort(monkeypatch):
    """The cap changed within a process (a library user's in-process runs): Paddle aborts
    on a second library with the same operator names, so the plan falls back instead."""
    library = plan_speed(speed_options([]), "cpu", 2).library
    assert library is not None
    with pytest.raises(RuntimeError, match="built for another ISA cap"):
        register(library + ".other")
    monkeypatch.setattr(onednn_build, "ensure_built", lambda say: library + ".other")
    plan = plan_speed(speed_options([]), "cpu", 2)
    assert plan.conv == "paddle" and "start a new process for the new cap" in plan.note


def test_the_bf16_note_names_dnnl_max_cpu_isa_where_that_is_the_cap(monkeypatch):
    from paddle_resnet.speed import bf16_unavailable
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "avx2")
    assert onednn_build.vector_target() == "avx2" and not native_bf16()
    assert "and DNNL_MAX_CPU_ISA=avx2 caps oneDNN below those kernels" in bf16_unavailable(
        "AVX-512 BF16")


# One float32 training step of the fused ResNet-20 and DenseNet-40 on a fixed batch, the
# weights after it saved to argv[1]; with argv[2] the operators are the build for that
# ISA cap, while oneDNN itself runs uncapped (the variable is gone before its first
# primitive: the plan's trial run, which would make some under the cap, is left out), so
# only the operators' own passes differ.
FUSED_STEP = """
import os, sys
import numpy as np
import paddle
if len(sys.argv) > 2:
    os.environ["ONEDNN_MAX_CPU_ISA"] = sys.argv[2]
from paddle_resnet.engine.step import speed_options, train_step, training_model
from paddle_resnet.speed import plan_speed, trial
trial.failure = lambda plan: None
plan = plan_speed(speed_options(["fused_block=true", "conv_bf16=false"]), "cpu", 2)
os.environ.pop("ONEDNN_MAX_CPU_ISA", None)
weights = {}
for name in ("resnet20", "densenet40_k12"):
    paddle.seed(0)
    model = training_model(name, plan)
    rng = np.random.default_rng(0)
    images = paddle.to_tensor(rng.standard_normal((8, 32, 32, 3)).astype("float32"))
    labels = paddle.to_tensor(rng.integers(0, 10, 8))
    optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    train_step(model, images, labels, optimizer)
    weights.update({f"{name}.{k}": v.numpy() for k, v in model.state_dict().items()})
np.savez(sys.argv[1], **weights)
"""


@pytest.mark.slow
def test_the_passes_compute_the_same_bits_in_an_avx2_build(tmp_path):
    """The passes' AVX-512, AVX2 and baseline code make the same operations in the same
    order (-ffp-contract=off), so a run capped to AVX2 trains as an AVX2 host does."""
    env = dict(os.environ, **{CACHE_VARIABLE: str(tmp_path / "cache")})
    env.pop(onednn_build.ISA_VARIABLE, None)
    shared = dict(os.environ)  # the session's cache: its uncapped build is there already
    shared.pop(onednn_build.ISA_VARIABLE, None)
    for out, run_env, cap in ((tmp_path / "clones.npz", shared, []),
                              (tmp_path / "avx2.npz", env, ["AVX2"])):
        done = subprocess.run([sys.executable, "-c", FUSED_STEP, str(out), *cap], cwd=ROOT,
                              env=run_env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    log = next((tmp_path / "cache").glob("onednn/*/build.log")).read_text()
    assert "-DPADDLE_RESNET_VECTORS_AVX2" in log
    clones, avx2 = np.load(tmp_path / "clones.npz"), np.load(tmp_path / "avx2.npz")
    assert sorted(clones.files) == sorted(avx2.files)
    for key in clones.files:
        np.testing.assert_array_equal(avx2[key], clones[key], err_msg=key)
