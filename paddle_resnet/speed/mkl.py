"""MKL's fast kernels on AMD CPUs. Imports nothing of Paddle: it must act before Paddle
computes anything.

Paddle's CPU build ships Intel's `libmklml_intel.so`, whose dispatcher checks the CPU
*vendor*, not its instruction set, and runs generic SSE code on AMD CPUs, even those with
AVX2 and AVX-512. `MKL_DEBUG_CPU_TYPE=5` makes it use its AVX2 kernels. This MKL reads the
variable at its first call, not when the library loads (measured with Paddle 3.3.1:
setting it after `import paddle` but before the first training step gives the fast path,
setting it after that step does not), so importing `paddle_resnet` anywhere before the
first Paddle computation is enough (`runtime.prepare_process` does it where a run starts;
importing the package changes nothing), and child processes inherit it. On this project's AMD
EPYC it made ResNet-20's training step 1.7x as fast, with results equal within float32
rounding (docs/performance.md, tests/test_cpu.py).

`PADDLE_RESNET_MKL_FAST_PATH=0` turns it off; a value of `MKL_DEBUG_CPU_TYPE` set by the
user is never changed.
"""
import os
from typing import Optional

from ..cpu import AMD_VENDOR, cpu_vendor
from .switches import switched_off

MKL_VARIABLE = "MKL_DEBUG_CPU_TYPE"
MKL_AVX2 = "5"  # MKL's code for its AVX2 dispatch (4 = AVX, 5 = AVX2)
SWITCH = "PADDLE_RESNET_MKL_FAST_PATH"


def enable_mkl_fast_path(environ=os.environ, vendor: Optional[str] = None) -> str:
    """Set MKL's AVX2 dispatch on an AMD CPU unless the user decided otherwise; returns
    the state for the run's first line: `on`, `off (...)`, or `not needed (...)`."""
    off = switched_off(environ, SWITCH)
    if off:
        return off
    if MKL_VARIABLE in environ:
        value = environ[MKL_VARIABLE]
        return "on" if value == MKL_AVX2 else f"as set by the user ({MKL_VARIABLE}={value})"
    vendor = cpu_vendor() if vendor is None else vendor
    if vendor != AMD_VENDOR:
        return f"not needed ({vendor or 'unknown vendor'})"
    environ[MKL_VARIABLE] = MKL_AVX2
    return "on"


_state: Optional[str] = None


def ensure_mkl_fast_path() -> str:
    """Switches the fast path on once per process and returns its state (the run's
    header reads it); later calls change nothing."""
    global _state
    if _state is None:
        _state = enable_mkl_fast_path()
    return _state
