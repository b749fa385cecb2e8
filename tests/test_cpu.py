"""MKL's fast path on AMD CPUs (paddle_resnet/speed/mkl.py), glibc's memory reuse
(paddle_resnet/speed/malloc.py) and the hardware line of a run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from paddle_resnet import cpu
from paddle_resnet.device import describe
from paddle_resnet.speed import malloc, mkl

STEPS = os.path.join(ROOT, "tests", "mkl_steps.py")
MALLOC_STEPS = os.path.join(ROOT, "tests", "malloc_steps.py")


def test_amd_gets_the_avx2_dispatch():
    environ = {}
    assert mkl.enable_mkl_fast_path(environ, vendor="AuthenticAMD") == "on"
    assert environ == {"MKL_DEBUG_CPU_TYPE": "5"}


def test_other_vendors_are_left_alone():
    environ = {}
    assert mkl.enable_mkl_fast_path(environ, vendor="GenuineIntel") == \
        "not needed (GenuineIntel)"
    assert environ == {}


def test_a_value_the_user_set_is_kept():
    environ = {"MKL_DEBUG_CPU_TYPE": "4"}
    state = mkl.enable_mkl_fast_path(environ, vendor="AuthenticAMD")
    assert environ == {"MKL_DEBUG_CPU_TYPE": "4"}
    assert state == "as set by the user (MKL_DEBUG_CPU_TYPE=4)"


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_the_switch_turns_it_off(value):
    environ = {"PADDLE_RESNET_MKL_FAST_PATH": value}
    assert mkl.enable_mkl_fast_path(environ, vendor="AuthenticAMD").startswith("off (")
    assert "MKL_DEBUG_CPU_TYPE" not in environ


def _steps(tmp_path, name, *extra, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MKL_DEBUG_CPU_TYPE", "PADDLE_RESNET_MKL_FAST_PATH")}
    environ.update(env)
    out = tmp_path / f"{name}.npz"
    done = subprocess.run([sys.executable, STEPS, str(out), *extra], capture_output=True,
                          text=True, env=environ, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out)


@pytest.mark.slow
@pytest.mark.skipif(cpu.cpu_vendor() != cpu.AMD_VENDOR, reason="MKL's fast path is for AMD")
def test_on_this_amd_cpu_mkl_runs_its_avx2_kernels_with_the_same_results(tmp_path):
    fast, fast_run = _steps(tmp_path, "fast")
    # Paddle imported (computing nothing) before paddle_resnet: MKL reads the variable
    # at its first call, so the package still switches it on.
    late, late_run = _steps(tmp_path, "late", "paddle-first")
    slow, slow_run = _steps(tmp_path, "slow", PADDLE_RESNET_MKL_FAST_PATH="0")
    assert fast == {"dispatch": 5, "variable": "5"}
    assert late == {"dispatch": 5, "variable": "5"}
    assert slow == {"dispatch": 0, "variable": None}
    # Float32 rounding only: the kernels sum in another order. Measured here, the losses
    # agree to 3e-6 and, after three momentum steps, the weights (up to 2.4) to 2e-4.
    np.testing.assert_allclose(fast_run["losses"], slow_run["losses"], rtol=1e-5)
    for key in slow_run.files:
        np.testing.assert_allclose(fast_run[key], slow_run[key], rtol=1e-3, atol=1e-3,
                                   err_msg=key)
        np.testing.assert_array_equal(fast_run[key], late_run[key], err_msg=key)


class RecordingLibc:
    """Stands in for glibc: records mallopt's calls and answers `accept`."""

    def __init__(self, accept=1):
        self.calls, self.accept = [], accept

    def mallopt(self, parameter, value):
        self.calls.append((parameter, value))
        return self.accept


def test_glibc_keeps_freed_memory():
    libc = RecordingLibc()
    assert malloc.keep_freed_memory({}, libc) == "on"
    assert sorted(libc.calls) == [(malloc.M_MMAP_THRESHOLD, 32 * 2 ** 20),
                                  (malloc.M_TRIM_THRESHOLD, 2 ** 31 - 1)]


@pytest.mark.parametrize("environ, state", [
    ({"PADDLE_RESNET_KEEP_MEMORY": "0"}, "off (PADDLE_RESNET_KEEP_MEMORY=0)"),
    ({"MALLOC_TRIM_THRESHOLD_": "0"}, "as set by the user (MALLOC_TRIM_THRESHOLD_)"),
    ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1"}, "as set by the user (GLIBC_TUNABLES)"),
])
def test_a_users_choice_leaves_the_allocator_alone(environ, state):
    libc = RecordingLibc()
    assert malloc.keep_freed_memory(environ, libc) == state
    assert libc.calls == []


def test_without_glibc_or_its_consent_the_state_says_why():
    assert malloc.keep_freed_memory({}, None) == "not available (the C library is not glibc)"
    assert malloc.keep_freed_memory({}, RecordingLibc(accept=0)) == \
        "not available (glibc refused mallopt)"


def _malloc_steps(tmp_path, name, **env):
    environ = {k: v for k, v in os.environ.items()
               if k != malloc.SWITCH and not k.startswith("MALLOC_")}
    environ.update(env)
    out = tmp_path / f"{name}.npz"
    done = subprocess.run([sys.executable, MALLOC_STEPS, str(out)], capture_output=True,
                          text=True, env=environ, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out)


@pytest.mark.slow
@pytest.mark.skipif(malloc._glibc() is None, reason="mallopt is glibc's")
def test_kept_memory_stops_the_page_faults_and_changes_no_number(tmp_path):
    kept, kept_run = _malloc_steps(tmp_path, "kept")
    default, default_run = _malloc_steps(tmp_path, "default", PADDLE_RESNET_KEEP_MEMORY="0")
    assert kept["state"] == "on" and default["state"].startswith("off (")
    # Measured here: ~22,000 faults per step with glibc's defaults, ~30 kept.
    assert default["faults_per_step"] > 1000
    assert kept["faults_per_step"] < default["faults_per_step"] / 20
    for key in default_run.files:
        np.testing.assert_array_equal(kept_run[key], default_run[key], err_msg=key)


def test_describe_names_cores_and_processes():
    line = describe("cpu", 2)
    assert line.startswith("cpu: ") and f", {cpu.usable_cores()} cores; " in line
    assert line.endswith("; 2 processes") and describe("cpu", 1).endswith("; 1 process")


@pytest.mark.parametrize("flags, extension", [
    ("fpu sse4_2 avx avx2 fma", "AVX2"),
    ("avx avx2 avx512f avx512bw avx512_vnni", "AVX-512"),
    ("avx2 avx512f avx512_bf16", "AVX-512 BF16"),
    ("avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "AMX"),
    ("sse sse2 avx", "AVX"),
    ("fp asimd", ""),  # not x86: nothing to name
])
def test_the_widest_vector_extension_is_named(flags, extension):
    assert cpu.vector_extension(flags) == extension


def test_the_hardware_line_names_the_vector_extension(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_quota", lambda: None)
    monkeypatch.setattr(cpu, "vector_extension", lambda: "AVX2")
    assert describe("cpu", 2).startswith(f"cpu: {cpu.cpu_name()} (AVX2), ")
    monkeypatch.setattr(cpu, "vector_extension", lambda: "")
    assert describe("cpu", 2) == f"cpu: {cpu.cpu_name()}, {cpu.usable_cores()} cores; 2 processes"


def _cgroups(tmp_path, own: str, files: dict) -> str:
    """A fake /sys/fs/cgroup under tmp_path with `files` ({relative path: text}) and a
    /proc/self/cgroup reading `own`; returns that file's path."""
    for relative, text in files.items():
        path = tmp_path / "cg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "cg").mkdir(exist_ok=True)
    (tmp_path / "self_cgroup").write_text(own)
    return str(tmp_path / "self_cgroup")


@pytest.mark.parametrize("own, files, quota", [
    # cgroup v2, a Kubernetes pod's container limited to 4 CPUs, its pod to 6
    ("0::/kubepods/pod1/c1\n", {"kubepods/pod1/c1/cpu.max": "400000 100000\n",
                                "kubepods/pod1/cpu.max": "600000 100000\n",
                                "kubepods/cpu.max": "max 100000\n"}, 4.0),
    # a parent's quota below the container's own is the one that holds
    ("0::/kubepods/pod1/c1\n", {"kubepods/pod1/c1/cpu.max": "max 100000\n",
                                "kubepods/pod1/cpu.max": "150000 100000\n"}, 1.5),
    # v2 in a container's own cgroup namespace: its cgroup is the mount's root
    ("0::/\n", {"cpu.max": "200000 100000\n"}, 2.0),
    # v1, Docker's --cpus=3
    ("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
     {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
      "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, 3.0),
    # v1 seen from inside the container: the host's path, the container's cgroup mounted
    ("4:cpu,cpuacct:/docker/abc\n", {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
                                     "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
    # no quota: v1's -1, v2's max, or no files at all (this host)
    ("4:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                           "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    ("0::/user.slice\n", {"user.slice/cpu.max": "max 100000\n"}, None),
    ("0::/\n4:cpu:/\n", {}, None),
    ("garbage\n0::/\n", {"cpu.max": "300000 100000\n"}, 3.0),  # a line it cannot read
])
def test_the_cpu_quota_is_read_from_cgroups_v1_and_v2(tmp_path, own, files, quota):
    own_file = _cgroups(tmp_path, own, files)
    assert cpu.cpu_quota(str(tmp_path / "cg"), own_file) == quota


@pytest.mark.parametrize("affinity, quota, usable", [
    (64, 4.0, 4), (64, 1.5, 2), (64, 0.5, 1), (2, 8.0, 2), (2, None, 2)])
def test_usable_cores_is_the_affinity_or_the_quota_below_it(monkeypatch, affinity, quota,
                                                            usable):
    monkeypatch.setattr(cpu, "affinity_cores", lambda: affinity)
    monkeypatch.setattr(cpu, "cpu_quota", lambda: quota)
    assert cpu.usable_cores() == usable


def test_the_hardware_line_names_a_quota_below_the_cores(monkeypatch):
    monkeypatch.setattr(cpu, "vector_extension", lambda: "AVX2")
    monkeypatch.setattr(cpu, "affinity_cores", lambda: 64)
    monkeypatch.setattr(cpu, "cpu_quota", lambda: 3.5)
    assert describe("cpu", 4) == (f"cpu: {cpu.cpu_name()} (AVX2), 4 cores (a CPU quota of 3.5 "
                                  "of the 64 it may run on); 4 processes")
    monkeypatch.setattr(cpu, "cpu_quota", lambda: 1.0)
    assert describe("cpu", 1) == (f"cpu: {cpu.cpu_name()} (AVX2), 1 core (a CPU quota of 1 "
                                  "of the 64 it may run on); 1 process")
