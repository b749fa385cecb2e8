"""The host CPU: its vendor, name, vector instructions and the cores this process may use."""
import os
import platform
from typing import Dict, Optional

AMD_VENDOR = "AuthenticAMD"


def _cpuinfo() -> Dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_vendor() -> str:
    """The CPUID vendor string (`AuthenticAMD`, `GenuineIntel`, ...), or '' if unknown."""
    vendor = _cpuinfo().get("vendor_id", "")
    if not vendor and AMD_VENDOR in platform.processor():  # Windows puts it here
        vendor = AMD_VENDOR
    return vendor


def cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


# Widest first. The width halves or doubles every convolution's speed (the same 2-core
# EPYC VM type has come as Zen 4 with AVX-512 BF16 and as Zen 3 with AVX2 only, and
# trained DenseNet-40 about 2.7x slower on the second), so run headers name it.
VECTOR_EXTENSIONS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"),
                     ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
# the ones with bfloat16 dot products, oneDNN's fast bf16 kernels
BF16_EXTENSIONS = tuple(name for flag, name in VECTOR_EXTENSIONS if flag.endswith("_bf16"))


def vector_extension(flags: Optional[str] = None) -> str:
    """The widest vector extension among /proc/cpuinfo's `flags` (or the given ones):
    'AVX-512 BF16', 'AVX-512', 'AVX2', ...; '' where the CPU does not say (not Linux, or
    not x86)."""
    present = set((_cpuinfo().get("flags", "") if flags is None else flags).split())
    return next((name for flag, name in VECTOR_EXTENSIONS if flag in present), "")


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers restrict)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
