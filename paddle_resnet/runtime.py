"""What a run sets in its own process, once, where it starts (the tools' entry point, a
Trainer, the library's train/evaluate/predict): never at `import paddle_resnet`, because
importing a library must not change the process that imports it.

- `GLOG_minloglevel=2` (unless set): Paddle's C++ log writes a "W..." line to stderr when
  a model is traced for Paddle Inference, about an argument Paddle itself passes; errors
  still show. glog reads it when Paddle loads, so it takes effect only where this runs
  before `import paddle` (the tools do).
- MKL's fast kernels on AMD CPUs (`speed/mkl.py`): before Paddle's first computation.
- glibc's allocator keeps freed memory (`speed/malloc.py`), so that steps reuse it instead
  of faulting their activations in anew.
- Three warning filters for notices Paddle repeats on every run about behaviour the
  recipes expect.
"""
import os
import warnings

from .speed.malloc import ensure_freed_memory_kept
from .speed.mkl import ensure_mkl_fast_path

QUIET_WARNINGS = (
    # paddle.utils.cpp_extension without ccache: the oneDNN operators are compiled once
    # into a cache (speed/onednn_build.py), where ccache would save nothing.
    "No ccache found",
    # BatchNorm in train mode, for every model: what every CIFAR recipe expects.
    "When training, we now always track global mean",
    # Tracing for Paddle Inference asks static-graph values for a place; harmless.
    "Tensor do not have 'place' interface",
)


def prepare_process() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    ensure_mkl_fast_path()
    ensure_freed_memory_kept()
