"""glibc's allocator keeps the memory a training step frees. Imports nothing of Paddle.

Paddle's CPU tensors come from glibc's `malloc`. glibc serves blocks above its mmap
threshold with fresh `mmap`s and hands the heap's free top back to the kernel past its trim
threshold, and it moves both thresholds up only when a large mmapped block is freed
(mallopt(3), "dynamic mmap threshold"). Until that happens, every training step faults its
activations in again, page by page. A run on all of CIFAR-10 meets exactly that: nothing
that large is freed before its first evaluation (a `data.test_samples` cut frees the full
test array, which is why subsets never showed it). Measured on 2026-12-04 (AMD EPYC, 2
processes, docs/performance.md): ~18,000 page faults and 58 ms of kernel time per
iteration until then, 1.16x the iteration's wall time; `configs/resnet20_onecycle30_flip.yaml`,
evaluated first after epoch 10, took 30 min 32 s with glibc's defaults and 26 min 36 s
with the thresholds below set from the start (glibc's largest mmap threshold, no trimming).
Where memory comes from never changes arithmetic: both runs ended on the same numbers, and
tests/test_cpu.py checks a step's results bit for bit. Each process keeps its high-water
mark resident (that run: a peak of 911 MiB per process against 838 MiB).

`mallopt` acts on the calling process from then on, so `runtime.prepare_process` calls
it where a run starts (each training process does); importing the package changes
nothing. `PADDLE_RESNET_KEEP_MEMORY=0` turns it off; glibc's own tunables
(`MALLOC_*_` variables, `GLIBC_TUNABLES`) set by the user win.
"""
import ctypes
import os
from typing import Mapping, Optional

from .switches import switched_off

SWITCH = "PADDLE_RESNET_KEEP_MEMORY"
# mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# glibc refuses an mmap threshold above 32 MiB on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX);
# the trim threshold is an int.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2 ** 31 - 1
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "MALLOC_MMAP_MAX_")


def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols; Windows has no such handle
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it
        libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def keep_freed_memory(environ: Mapping[str, str] = os.environ, libc="glibc") -> str:
    """Set glibc's thresholds unless the user decided otherwise; returns the state for the
    run's first line: `on`, `off (...)`, `as set by the user (...)` or `not available
    (...)`. `libc` is for tests: a stand-in with `mallopt`, or None for no glibc."""
    off = switched_off(environ, SWITCH)
    if off:
        return off
    user = [v for v in USER_VARIABLES if v in environ]
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        user.append("GLIBC_TUNABLES")
    if user:
        return f"as set by the user ({', '.join(user)})"
    libc = _glibc() if libc == "glibc" else libc
    if libc is None:
        return "not available (the C library is not glibc)"
    if not (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "not available (glibc refused mallopt)"
    return "on"


_state: Optional[str] = None


def ensure_freed_memory_kept() -> str:
    """Sets the thresholds once per process and returns the state (the run's header
    reads it); later calls change nothing."""
    global _state
    if _state is None:
        _state = keep_freed_memory()
    return _state
