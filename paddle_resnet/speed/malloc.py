"""glibc's allocator keeps the memory a training step frees. Imports nothing of Paddle.

Paddle's CPU tensors come from glibc's `malloc`. glibc serves blocks above its mmap
threshold with fresh `mmap`s and hands the heap's free top back to the kernel past its trim
threshold, and it moves both thresholds up only when a large mmapped block is freed
(mallopt(3), "dynamic mmap threshold"). Until that happens, every training step faults its
activations in again, page by page. A run on the full data meets exactly that: nothing
large is freed before its first evaluation, so its first epochs fault ~80,000 pages a
second per process (9.7 million in ResNet-20's first epoch, 27 s of kernel time; the run
after an evaluation, or on a `data.test_samples` subset whose cut frees the full test
array, does not). Measured on 2026-12-04 (AMD EPYC, 2 processes,
`configs/resnet20_onecycle30_flip.yaml`): its 30-epoch runs went at ~700 images/s until
the evaluation after epoch 10 and at ~950 after it. With the mmap threshold at glibc's
largest and trimming off from the start, the first epoch faults as few pages as the later
ones (benchmarks/page_faults.py). Where memory comes from never changes arithmetic, so
results are bit for bit those of glibc's defaults (tests/test_cpu.py); each process keeps
the high-water mark of its step resident (~30 MB more for ResNet-20).

`mallopt` acts on the calling process from then on, so `runtime.prepare_process` calls
it where a run starts (each training process does); importing the package changes
nothing. `PADDLE_RESNET_KEEP_MEMORY=0` turns it off; glibc's own tunables
(`MALLOC_*_` variables, `GLIBC_TUNABLES`) set by the user win.
"""
import ctypes
import os
from typing import Mapping, Optional

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
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it
        libc.mallopt
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory(environ: Mapping[str, str] = os.environ, libc="glibc") -> str:
    """Set glibc's thresholds unless the user decided otherwise; returns the state for the
    run's first line: `on`, `off (...)`, `as set by the user (...)` or `not available
    (...)`. `libc` is for tests: a stand-in with `mallopt`, or None for no glibc."""
    if environ.get(SWITCH, "1").strip().lower() in ("0", "false", "off", "no"):
        return f"off ({SWITCH}={environ[SWITCH]})"
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
