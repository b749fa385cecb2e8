"""The host CPU: its vendor, name and the cores this process may use."""
import os
import platform
from typing import Dict

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


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers restrict)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
