"""paddle_resnet: residual networks on CIFAR, reproduced with PaddlePaddle."""
import os
import warnings

# Paddle's C++ log (glog) writes a "W..." line to stderr when a model is traced for
# Paddle Inference (eval.engine), about an argument Paddle itself passes; errors still
# show. Read once when Paddle loads, so it only takes effect when set before that.
os.environ.setdefault("GLOG_minloglevel", "2")

# Paddle >= 3.0 warns when paddle.utils.cpp_extension is imported without ccache; the
# package compiles its operators once into a cache (speed/onednn_build.py), where ccache
# would save nothing, and the warning would open every run. Set before the import below.
warnings.filterwarnings("ignore", message="No ccache found")

# MKL's fast kernels on AMD CPUs: must be set before Paddle's first computation, so it is
# done here, at the package's import (paddle_resnet/speed/mkl.py says why and how to opt
# out).
from .speed import mkl  # noqa: E402,F401
# Paddle's BatchNorm repeats this notice for every model in train mode; it describes the
# behaviour every CIFAR recipe expects.
warnings.filterwarnings("ignore", message="When training, we now always track global mean")
# Tracing a model for Paddle Inference (eval.engine) asks each tensor for its place,
# which static-graph values do not have; the program is unaffected.
warnings.filterwarnings("ignore", message="Tensor do not have 'place' interface")

__version__ = "0.1.0"
