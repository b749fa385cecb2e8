"""The bare training step as a run's loop runs it, as far as memory goes.

Timed alone, in a loop of nothing but steps on one batch, Paddle's step makes glibc hand
the step's freed activations back to the kernel and fault them in again on the next step:
8,700-22,000 minor page faults and 21-55 ms of kernel time per ResNet-20 step (batch 64,
one of two processes; AVX-512 BF16 host, 2026-12-03), while the same step inside
`tools/train.py`'s loop faults about a dozen times per iteration
(benchmarks/page_faults.py measures both; docs/performance.md has the table). The
benchmarks that time the bare step (speed_paths.py, profile_step.py, frameworks.py) call
`keep_freed_memory()` first, so that they time what a run computes rather than that
pathology: glibc's mmap threshold at its largest (32 MiB on 64-bit) and trimming off.
Where memory comes from changes no arithmetic. A training run leaves glibc as it is.
"""
import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (glibc's malloc.h)
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit
NEVER_TRIM = 2 ** 31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """True where glibc took the settings; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
                and libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
