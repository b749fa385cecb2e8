"""The evaluation batch: what the user asks for, else per model the largest power of two
whose widest activation stays clear of glibc's mmap threshold (engine/eval_batch.py)."""
import pytest

from paddle_resnet.engine.eval_batch import eval_batch_size, widest_activation_bytes
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
    # DenseNet-40: 640 KiB an image -> 16 per process (25 would fit, 32 would not)
    assert eval_batch_size(0, 1, "cpu", widest_bytes=640 * KIB) == 16
    assert eval_batch_size(0, 2, "cpu", 64, widest_bytes=640 * KIB) == 32
    # ResNet-18 at batch 150 over 2 processes: 256 KiB an image -> 64 each
    assert eval_batch_size(0, 2, "cpu", 150, widest_bytes=256 * KIB) == 128
    # ResNet-20: 64 KiB an image, 256 fits; never above the share of max(batch, 256)
    assert eval_batch_size(0, 1, "cpu", widest_bytes=64 * KIB) == 256
    assert eval_batch_size(0, 2, "cpu", 128, widest_bytes=64 * KIB) == 256
    assert eval_batch_size(0, 1, "cpu", 512, widest_bytes=16 * KIB) == 512
    for world, bytes_ in ((1, 640 * KIB), (2, 256 * KIB), (4, 1000 * KIB)):
        per_process = eval_batch_size(0, world, "cpu", widest_bytes=bytes_) // world
        assert per_process * bytes_ <= MMAP_THRESHOLD // 2 < 2 * per_process * bytes_
    # an image wider than half the threshold still evaluates, one at a time
    assert eval_batch_size(0, 1, "cpu", widest_bytes=MMAP_THRESHOLD) == 1


def test_a_gpu_keeps_the_batch_evaluation_always_had():
    assert eval_batch_size(0, 2, "gpu:0", 64) == 256
    assert eval_batch_size(0, 1, "gpu:0", 512) == 512


def test_a_requested_batch_is_taken_as_given_or_refused():
    assert eval_batch_size(100, 2, "cpu", widest_bytes=640 * KIB) == 100
    with pytest.raises(ConfigError, match=r"^eval.batch_size = 1 gives some of the 2 "
                                          r"processes no image; set it to at least 2, or 0"):
        eval_batch_size(1, 2, "cpu")
