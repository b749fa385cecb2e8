import atexit
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
sys.path.insert(0, ROOT)
# The test process is a run of the package: what a run sets in its process (log level,
# MKL's fast path, warning filters) is set here, before Paddle loads.
from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()
# The tests' tiny archives are decoded into a cache of their own (data/cache.py), which
# every process they start inherits, not into the user's.
os.environ["PADDLE_RESNET_DATA_CACHE"] = tempfile.mkdtemp(prefix="paddle_resnet_data_")
atexit.register(shutil.rmtree, os.environ["PADDLE_RESNET_DATA_CACHE"], True)


class RunsCommand:
    """What a crafted pickle holds: unpickling it calls os.system(command)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def add_member(tar: tarfile.TarFile, name: str, payload) -> None:
    """`payload` pickled, or stored as it is when it is already bytes."""
    data = payload if isinstance(payload, bytes) else pickle.dumps(payload)
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def class_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images whose colour tells the class, so a short run can learn something."""
    base = rng.integers(0, 256, size=(10, 3), dtype=np.int64)
    noise = rng.integers(-40, 41, size=(len(labels), 3, 32, 32))
    images = np.clip(base[labels % 10][:, :, None, None] + noise, 0, 255).astype(np.uint8)
    return images.reshape(len(labels), 3072)


def make_archive(path: str, dataset: str = "cifar10", train_per_batch: int = 40,
                 test: int = 100, seed: int = 0) -> str:
    """A tiny archive in the official python layout that paddle.vision.datasets reads."""
    rng = np.random.default_rng(seed)
    classes = 10 if dataset == "cifar10" else 100
    key = b"labels" if dataset == "cifar10" else b"fine_labels"
    folder = "cifar-10-batches-py" if dataset == "cifar10" else "cifar-100-python"
    train_names = ([f"data_batch_{i}" for i in range(1, 6)] if dataset == "cifar10"
                   else ["train"])
    with tarfile.open(path, "w:gz") as tar:
        for name in train_names:
            count = train_per_batch if dataset == "cifar10" else 5 * train_per_batch
            labels = rng.integers(0, classes, size=count)
            add_member(tar, f"{folder}/{name}", {b"data": class_images(labels, rng),
                                          key: labels.tolist()})
        labels = rng.integers(0, classes, size=test)
        add_member(tar, f"{folder}/{'test_batch' if dataset == 'cifar10' else 'test'}",
             {b"data": class_images(labels, rng), key: labels.tolist()})
    return path


@pytest.fixture(scope="session")
def tiny_cifar10(tmp_path_factory):
    return make_archive(str(tmp_path_factory.mktemp("data") / "cifar-10-python.tar.gz"))


@pytest.fixture(scope="session")
def tiny_cifar100(tmp_path_factory):
    return make_archive(str(tmp_path_factory.mktemp("data100") / "cifar-100-python.tar.gz"),
                        dataset="cifar100")


LOSSLESS_CIFAR10 = os.path.join(SHARED_DATA, "cifar10-lossless.tar.xz")


@pytest.fixture(scope="session")
def real_cifar10():
    """The data of record: the official CIFAR-10 split in the official python layout
    (../shared/data/cifar10-lossless.tar.xz), which Paddle reads as it is."""
    if not os.path.isfile(LOSSLESS_CIFAR10):
        if os.environ.get("CI"):
            pytest.fail(f"{LOSSLESS_CIFAR10} is missing; CI runs with ../shared beside the clone")
        pytest.skip("real CIFAR-10 (../shared/data) is not available here")
    return LOSSLESS_CIFAR10


def quickstart_args(archive, output_dir, *overrides):
    """tools/train.py arguments: the quickstart config on `archive`, plus overrides."""
    args = ["-c", "configs/quickstart.yaml", "-o", f"data.data_file={archive}",
            "-o", f"output_dir={output_dir}"]
    for override in overrides:
        args += ["-o", override]
    return args


def run_tool(tool: str, *args, env=None, timeout=600):
    """Run tools/<tool>.py as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", f"{tool}.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def start_tool(*args, tool: str = "train"):
    """tools/<tool>.py started as a user would, its output read as it comes."""
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", f"{tool}.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


def wait_for(process, marker: str) -> list:
    """Lines of `process`'s stdout up to the first holding `marker`."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never printed:\n{''.join(seen)[-3000:]}")


def cmdline_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def environ_of(pid: int) -> dict:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            pairs = f.read().split(b"\0")
    except OSError:
        return {}
    return dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)


def processes_naming(text) -> list:
    """PIDs whose command line holds `text` (e.g. a run's output_dir: the parent, the
    launcher and the workers)."""
    return [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if str(text) in cmdline_of(pid)]


def gone_within(text, seconds: float) -> list:
    """The processes naming `text` still alive after waiting up to `seconds` for none."""
    deadline = time.monotonic() + seconds
    while processes_naming(text) and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_naming(text)


# Mean 0 and std 1/255 make the augmentations' standardised output the pixel levels.
PIXEL_LEVELS = ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))


def as_pixels(batch: np.ndarray) -> np.ndarray:
    """float32 NCHW pixel levels (from PIXEL_LEVELS) -> uint8 NHWC."""
    return np.rint(batch).astype(np.uint8).transpose(0, 2, 3, 1)


def assert_fused_steps_repeat(name: str, conv_bf16: str, processes: int = 2) -> None:
    """Two `name` models built from one seed with the fused operators
    (`speed.conv_bf16=conv_bf16`), planned as one of `processes` processes, train the same
    three steps to the same bits: what exact resume rests on."""
    import paddle
    from paddle_resnet.engine.step import speed_options, training_model
    from paddle_resnet.speed import plan_speed
    models = {}
    for key in ("first", "again"):
        plan = plan_speed(speed_options(["fused_block=true", f"conv_bf16={conv_bf16}"]),
                          "cpu", processes)
        paddle.seed(0)
        models[key] = training_model(name, plan)
    assert_same_training(models, loss_rtol=0, weight_atol=0)


def assert_same_training(models: dict, loss_rtol: float, weight_atol: float) -> None:
    """Three updates of the package's train_step on the same random batches, for two
    models (name -> model) built from one seed: their losses within `loss_rtol` and their
    weights within `weight_atol` of each other."""
    import paddle
    from paddle_resnet.engine.step import train_step
    rng = np.random.default_rng(0)
    batches = [(paddle.to_tensor(rng.standard_normal([16, 32, 32, 3]), "float32"),
                paddle.to_tensor(rng.integers(0, 10, 16))) for _ in range(3)]
    losses, states = [], []
    for model in models.values():
        optimizer = paddle.optimizer.Momentum(0.05, momentum=0.9,
                                              parameters=model.parameters())
        losses.append([float(train_step(model, x, y, optimizer)[0]) for x, y in batches])
        states.append(model.state_dict())
    np.testing.assert_allclose(losses[0], losses[1], rtol=loss_rtol)
    for (name, a), b in zip(states[0].items(), states[1].values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=weight_atol,
                                   err_msg=name)


def assert_same_passes(reference, fused, x_shape, tolerance: float) -> None:
    """Two training passes (forward and backward) of a layer and its fused twin, built from
    one seed, on the same inputs: the output and the gradients of the input and of every
    trainable parameter within `tolerance` of the largest value, and afterwards the
    running statistics (the whole state) within float32 rounding."""
    import paddle
    for step in range(2):  # the running statistics move twice
        rng = np.random.default_rng(step)
        x_np = (2 * rng.standard_normal(x_shape) + 0.5).astype("float32")
        found = {}
        for key, layer in (("reference", reference), ("fused", fused)):
            x = paddle.to_tensor(x_np, stop_gradient=False)
            y = layer(x)
            weights = [p for p in layer.parameters() if not p.stop_gradient]
            grad_y = paddle.to_tensor(np.sin(np.arange(y.size)).reshape(y.shape), "float32")
            found[key] = [y] + list(paddle.grad([y], [x] + weights, [grad_y]))
        names = ["y", "x"] + [p.name for p in reference.parameters() if not p.stop_gradient]
        assert len(names) == len(found["fused"])
        for name, expected, got in zip(names, found["reference"], found["fused"]):
            scale = float(np.abs(expected.numpy()).max())
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0,
                                       atol=tolerance * scale, err_msg=f"step {step} {name}")
    for (name, a), b in zip(reference.state_dict().items(), fused.state_dict().values()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="session")
def fused_library():
    """The built oneDNN operators with the fused ones planned (tests of fused_block.py and
    fused_norm_conv.py)."""
    from paddle_resnet.engine.step import speed_options
    from paddle_resnet.speed import plan_speed
    plan = plan_speed(speed_options(["fused_block=true", "conv_bf16=false"]), "cpu", 2)
    if not plan.fused_block:
        pytest.fail(f"the oneDNN operators should build on this machine: {plan.note}")
    return plan.library
