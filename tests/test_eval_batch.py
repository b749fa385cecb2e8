"""The evaluation batch: what the user asks for, else per model the largest power of two
whose widest activation stays clear of glibc's mmap threshold (engine/eval_batch.py)."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from paddle_resnet.engine.eval_batch import (eval_batch_size, per_process_batch,
                                             widest_activation_bytes)
from paddle_resnet.engine.preflight import check_batch
from paddle_resnet.errors import ConfigError
from paddle_resnet.models import build_model
from paddle_resnet.speed.malloc import MMAP_THRESHOLD

KIB = 1024


@pytest.mark.parametrize("name, channels", [
    ("resnet20", 16),          # the stem and the first stage: 16 x 32 x 32
    ("resnet18", 64),          # the 3x3 stem keeps 32 x 32 at 64 channels
    ("densenet40_k12", 160),   # the first dense block ends on 16 + 12 x 12 channels
])
def test_the_widest_activation_of_one_image(name, channels):
    model = build_model(name)
    model.train()
    assert widest_activation_bytes(model) == channels * 32 * 32 * 4
    assert model.training  # left as it was
    model.eval()
    widest_activation_bytes(model)
    assert not model.training


@pytest.mark.parametrize("input_format", ["NCHW", "NHWC"])
def test_nhwc_models_measure_the_same(input_format):
    model = build_model("densenet40_k12", data_format="NHWC")
    model.input_format = input_format  # the batches a run feeds it (models/layers.py)
    assert widest_activation_bytes(model) == 160 * 32 * 32 * 4


def test_the_cpu_batch_keeps_activations_under_half_the_threshold():
    densenet, resnet18, resnet20 = (build_model(name) for name in
                                    ("densenet40_k12", "resnet18", "resnet20"))
    # DenseNet-40: 640 KiB an image -> 16 per process (25 would fit, 32 would not)
    assert eval_batch_size(0, 1, "cpu", densenet) == 16
    assert eval_batch_size(0, 2, "cpu", densenet, 64) == 32
    # ResNet-18 at batch 150 over 2 processes: 256 KiB an image -> 64 each
    assert eval_batch_size(0, 2, "cpu", resnet18, 150) == 128
    # ResNet-20: 64 KiB an image, 256 fits; never above the share of max(batch, 256)
    assert eval_batch_size(0, 1, "cpu", resnet20) == 256
    assert eval_batch_size(0, 2, "cpu", resnet20, 128) == 256
    assert per_process_batch(16 * KIB, 512) == 512
    for world, bytes_ in ((1, 640 * KIB), (2, 256 * KIB), (4, 1000 * KIB)):
        per_process = per_process_batch(bytes_, 256 // world)
        assert per_process * bytes_ <= MMAP_THRESHOLD // 2 < 2 * per_process * bytes_
    # an image wider than half the threshold still evaluates, one at a time
    assert per_process_batch(MMAP_THRESHOLD, 256) == 1


def test_a_gpu_keeps_the_batch_evaluation_always_had(monkeypatch):
    import paddle_resnet.engine.eval_batch as eval_batch
    monkeypatch.setattr(eval_batch, "widest_activation_bytes", None)  # never measured
    assert eval_batch_size(0, 2, "gpu:0", None, 64) == 256
    assert eval_batch_size(0, 1, "gpu:0", None, 512) == 512


def test_a_requested_batch_is_taken_as_given_or_refused(monkeypatch):
    import paddle_resnet.engine.eval_batch as eval_batch
    monkeypatch.setattr(eval_batch, "widest_activation_bytes", None)  # never measured
    assert eval_batch_size(100, 2, "cpu", None) == 100
    check_batch(128, 2, 2)
    with pytest.raises(ConfigError, match=r"^eval.batch_size = 1 gives some of the 2 "
                                          r"processes no image; set it to at least 2, or 0"):
        check_batch(128, 2, 1)


def test_a_refused_eval_batch_stops_train_py_before_it_launches(tiny_cifar10, tmp_path):
    """The check runs in tools/train.py's own process, with train.batch_size's: one line,
    exit 2, no worker started (no launch_logs) and no data read."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c",
                           os.path.join(ROOT, "configs", "quickstart.yaml"),
                           "-o", "eval.batch_size=1", "-o", f"output_dir={out}",
                           "-o", f"data.data_file={tiny_cifar10}",
                           "--nproc", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: eval.batch_size = 1 gives some of the 2 processes no image; set it to at "
        "least 2, or 0 to let the package choose")
    assert not (out / "launch_logs").exists()


def forward_batches(model):
    """The batch sizes `model` is called with, in order, as a list that fills as it runs."""
    seen = []
    model.register_forward_pre_hook(lambda layer, inputs: seen.append(inputs[0].shape[0]))
    return seen


def test_the_librarys_predict_and_evaluate_take_the_models_batch(tiny_cifar10):
    """paddle_resnet.predict/evaluate batch as tools/eval.py does: DenseNet-40 by 16 on a
    CPU, measured once per model (a caller predicting image by image pays it once)."""
    import numpy as np
    import paddle_resnet as pr
    from paddle_resnet.errors import UserError
    model = pr.create_model("densenet40_k12")
    seen = forward_batches(model)
    images = np.zeros((40, 32, 32, 3), np.uint8)
    pr.predict(model, images)
    assert seen == [1, 16, 16, 8]  # the one-image measurement, then the images
    seen.clear()
    pr.predict(model, images[:3])
    pr.evaluate(model, data_file=tiny_cifar10)  # its 100 test images
    assert seen == [3] + [16] * 6 + [4]
    seen.clear()
    pr.predict(model, images, batch_size=25)
    assert seen == [25, 15]
    for bad in (0, -4, 2.5, True):
        with pytest.raises(UserError, match=rf"^batch_size={bad!r}: pass a positive integer, "
                                            "or None to let the package choose one"):
            pr.predict(model, images, batch_size=bad)
