"""The host CPU: its vendor, name, vector instructions and the cores this process may use."""
import math
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


def _cgroup_limit(folder: str) -> Optional[float]:
    """The CPUs' worth of time one cgroup folder allows (its CFS quota over its period),
    None where it sets none: cgroup v2's `cpu.max` ("max 100000", "200000 100000") or
    v1's `cpu.cfs_quota_us` (-1 for none) and `cpu.cfs_period_us`."""
    try:
        with open(os.path.join(folder, "cpu.max")) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        try:
            with open(os.path.join(folder, "cpu.cfs_quota_us")) as f:
                quota = f.read().strip()
            with open(os.path.join(folder, "cpu.cfs_period_us")) as f:
                period = f.read().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cpu_quota(root: str = "/sys/fs/cgroup", own: str = "/proc/self/cgroup") -> Optional[float]:
    """The CPUs' worth of time this process's cgroups allow it (the smallest CFS quota of
    its cgroup and the ones above it), None where none is set. Docker's `--cpus` and
    Kubernetes' CPU limits set a quota and leave the affinity mask alone, so a container
    limited to 4 CPUs of a 64-core host still sees 64 in sched_getaffinity."""
    folders = []
    try:
        with open(own) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:  # "0::/path" (v2), "4:cpu,cpuacct:/path" (v1)
        fields = line.split(":", 2)
        if len(fields) != 3 or (fields[1] and "cpu" not in fields[1].split(",")):
            continue
        controllers, path = fields[1], fields[2]
        mounts = [root] if not controllers else [
            os.path.join(root, name) for name in (controllers, "cpu", "cpu,cpuacct")]
        for mount in filter(os.path.isdir, mounts):
            # Inside a container the path may name the host's hierarchy while the mount
            # shows the container's own cgroup as its root: then the mount is the folder.
            folder = os.path.join(mount, path.lstrip("/"))
            folder = folder if os.path.isdir(folder) else mount
            while True:
                folders.append(folder)
                if os.path.samefile(folder, mount) or folder == os.path.dirname(folder):
                    break
                folder = os.path.dirname(folder)
            break
    limits = [limit for limit in map(_cgroup_limit, folders) if limit is not None]
    return min(limits) if limits else None


def affinity_cores() -> int:
    """Cores this process may run on (its affinity mask, which `taskset` and
    `docker --cpuset-cpus` restrict)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cores() -> int:
    """Cores' worth of work this process may do: its affinity mask, or its CPU quota where
    that is lower, rounded up (as the JVM counts a container's CPUs)."""
    cores, quota = affinity_cores(), cpu_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))
