"""Building the oneDNN operators (onednn/: convolution, batch normalization) once per
machine.

The operator links against the oneDNN that ships inside the Paddle wheel
(`paddle/libs/libdnnl.so.3`), so the process never holds a second oneDNN, and compiles
against the headers of the `onednn-devel` wheel, which must not be newer than that
library (newer headers compile, then fail at load: `undefined symbol:
dnnl_memory_create_v2`). It is compiled on first use into a per-user cache keyed by the
sources, Paddle's version and commit, both oneDNN versions and the Python version;
processes that start at once take a file lock, so one compiles and the others wait and
load. The compiler's output goes to a log in the cache, never to the console.

Every reason it cannot run is a sentence (`unavailable_reason`), and the caller falls back
to Paddle's own convolution with that sentence in one line.
"""
import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Callable, Optional, Tuple

from ..user_cache import user_cache

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onednn")
SOURCES = ("conv.cc", "batch_norm.cc", "norm_passes.cc", "basic_block.cc", "norm_conv.cc",
           "common.h", "conv_primitives.h", "dnnl_cpu_config.h", "norm_passes.h",
           "vector_rows.h")
NAME = "paddle_resnet_onednn"
INCLUDE_VARIABLE = "PADDLE_RESNET_ONEDNN_INCLUDE"  # a folder holding oneapi/dnnl/dnnl.hpp
DNNL_RUNTIME_OMP = 2  # oneDNN's code for the OpenMP CPU runtime (dnnl_config.h)
Version = Tuple[int, int, int]


class BuildFailed(RuntimeError):
    """The compiler or the loader refused the operator; the message says where the log is."""


def _paddle_libs() -> str:
    import paddle
    return os.path.join(os.path.dirname(paddle.__file__), "libs")


def library_path() -> str:
    return os.path.join(_paddle_libs(), "libdnnl.so.3")


class _DnnlVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint),
                ("gpu_runtime", ctypes.c_uint)]


def library_version(path: str) -> Tuple[Version, int]:
    """(version, CPU runtime code) of a oneDNN library, from its own `dnnl_version()`."""
    library = ctypes.CDLL(path)
    library.dnnl_version.restype = ctypes.POINTER(_DnnlVersion)
    v = library.dnnl_version().contents
    return (v.major, v.minor, v.patch), v.cpu_runtime


def include_dir() -> Optional[str]:
    """The folder whose `oneapi/dnnl/dnnl.hpp` the build uses: $PADDLE_RESNET_ONEDNN_INCLUDE,
    else where pip puts the `onednn-devel` wheel's headers (<prefix>/include)."""
    candidates = [os.environ.get(INCLUDE_VARIABLE),
                  os.path.join(sysconfig.get_paths()["data"], "include"),
                  os.path.join(sys.prefix, "include")]
    for folder in candidates:
        if folder and os.path.isfile(os.path.join(folder, "oneapi", "dnnl", "dnnl.hpp")):
            return folder
    return None


def header_version(folder: str) -> Optional[Version]:
    try:
        with open(os.path.join(folder, "oneapi", "dnnl", "dnnl_version.h"),
                  encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    parts = [re.search(rf"#define DNNL_VERSION_{part}\s+(\d+)", text)
             for part in ("MAJOR", "MINOR", "PATCH")]
    return tuple(int(m.group(1)) for m in parts) if all(parts) else None


def _compiler() -> Optional[str]:
    configured = (sysconfig.get_config_var("CXX") or "").split()
    for name in configured[:1] + ["c++", "g++", "clang++"]:
        if shutil.which(name):
            return name
    return None


def _dotted(version: Version) -> str:
    return ".".join(str(v) for v in version)


def unavailable_reason(place: str) -> Optional[str]:
    """Why the operator cannot run here, or None if it can be built (or is built)."""
    if place != "cpu":
        return f"it is a CPU operator and the device is {place}"
    if not sys.platform.startswith("linux"):
        return f"it is built for Linux only, this is {sys.platform}"
    path = library_path()
    if not os.path.isfile(path):
        return f"this Paddle build ships no oneDNN ({path} is missing)"
    try:
        runtime, cpu_runtime = library_version(path)
    except (OSError, AttributeError) as e:
        return f"cannot read the version of {path}: {e}"
    if cpu_runtime != DNNL_RUNTIME_OMP:
        return (f"this Paddle's oneDNN {_dotted(runtime)} is not the OpenMP build the operator "
                f"is written for (CPU runtime code {cpu_runtime})")
    folder = include_dir()
    if folder is None:
        return ("the oneDNN headers are missing; `pip install onednn-devel==2025.0.1` (part of "
                "`pip install -e .[cpu]`) provides them")
    headers = header_version(folder)
    if headers is None:
        return f"cannot read the oneDNN header version in {folder}"
    if headers > runtime:
        return (f"the oneDNN headers in {folder} ({_dotted(headers)}) are newer than Paddle's "
                f"library ({_dotted(runtime)}); install onednn-devel of oneDNN <= "
                f"{_dotted(runtime)} (2025.0.1 is 3.6.1)")
    if os.path.isfile(built_library()):
        return None  # built before: no compiler needed
    if _compiler() is None:
        return "no C++ compiler was found (install g++)"
    if not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        return "the Python headers are missing (install python3-dev)"
    return None


# oneDNN's documented cap on the instruction set its kernels use, and the vector code the
# package's own passes are then compiled for (vector_rows.h): a run capped to AVX2 on a
# wider CPU (benchmarks' --as-avx2-host) then runs AVX2 code throughout, as an AVX2 host
# does. oneDNN reads ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA where that is unset or empty,
# and matches the whole value to its ISA names in any case: a value it does not know (a
# typo, a space) leaves it uncapped (checked against Paddle's libdnnl in test_onednn_conv).
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
ISA_VARIABLE = ISA_VARIABLES[0]
# The caps below oneDNN's bf16 dot-product kernels (AVX512_CORE_BF16), under which it
# emulates bf16 convolutions, slower than float32 (AVX-512), or refuses them (AVX2 and
# below), and the passes' vector code under each. Its names at
# or above them, and DEFAULT, leave the CPU to decide, as no cap does.
CAPS_BELOW_BF16 = {"AVX512_CORE_VNNI": "clones", "AVX512_CORE": "clones",
                   "AVX2_VNNI_2": "avx2", "AVX2_VNNI": "avx2", "AVX2": "avx2",
                   "AVX": "baseline", "SSE41": "baseline"}


def isa_cap() -> Optional[Tuple[str, str]]:
    """(the variable, its value) of the cap oneDNN reads from the environment, where the
    value is one of CAPS_BELOW_BF16 (in any case); None where nothing caps it below bf16."""
    variable = next((name for name in ISA_VARIABLES if os.environ.get(name)), None)
    if variable is None or _cap(os.environ[variable]) not in CAPS_BELOW_BF16:
        return None
    return variable, os.environ[variable]


def _cap(cap: Optional[str]) -> str:
    """The cap oneDNN makes of `cap` (default: the environment's), upper case: a name of
    CAPS_BELOW_BF16, or '' where the CPU decides."""
    if cap is None:
        found = isa_cap()
        cap = found[1] if found else ""
    return cap.upper() if cap.upper() in CAPS_BELOW_BF16 else ""


def vector_target(cap: Optional[str] = None) -> str:
    """`clones` (AVX-512, AVX2 and baseline, picked at load), `avx2` (AVX2 and baseline)
    or `baseline`, for oneDNN's ISA cap `cap` (default: the environment's, isa_cap)."""
    return CAPS_BELOW_BF16.get(_cap(cap), "clones")


def cap_allows_bf16(cap: Optional[str] = None) -> bool:
    """Whether oneDNN's ISA cap `cap` (default: the environment's, isa_cap) leaves its
    bf16 kernels to a CPU that has them."""
    return not _cap(cap)


def _vector_flags() -> list:
    target = vector_target()
    return [] if target == "clones" else [f"-DPADDLE_RESNET_VECTORS_{target.upper()}"]


def cache_key() -> str:
    import paddle
    digest = hashlib.sha256()
    digest.update(_BUILD_SCRIPT.encode())
    digest.update(" ".join(_vector_flags()).encode())
    for name in SOURCES:
        with open(os.path.join(SOURCE_DIR, name), "rb") as f:
            digest.update(f.read())
    runtime, _ = library_version(library_path())
    parts = [paddle.__version__, paddle.version.commit, _dotted(runtime),
             str(header_version(include_dir() or "")), sys.version]
    digest.update("\0".join(parts).encode())
    return digest.hexdigest()[:16]


def cache_dir() -> str:
    return user_cache("onednn")


def built_library() -> str:
    return os.path.join(cache_dir(), cache_key(), NAME + ".so")


# Run in a child Python: Paddle's JIT builder prints its own lines and the compiler's, and
# a crash of the compiler or of the first load stays out of the training process.
_BUILD_SCRIPT = """
import sys
from paddle.utils.cpp_extension import load
sources, include, source_dir, libs, build_dir, name = sys.argv[1:7]
vector_flags = sys.argv[7:]
# -O3: at -O2 GCC 12 compiles the add-and-ReLU loop with a branch per element, 20x slower
# on the random signs of activations (measured). -ffp-contract=off: every a * b + c rounds
# twice, as written, in every clone and however a loop is vectorized. GCC's default fuses
# some into FMAs and not others, so a pass's results changed with how it was compiled
# (the AVX-512 clone against the baseline one, a loop unrolled or not) and the ReLU mask
# recomputed in the backward could disagree with the forward's.
load(name, sources.split(","), build_directory=build_dir, verbose=True,
     extra_cxx_cflags=["-O3", "-ffp-contract=off", "-I" + source_dir, "-I" + include,
                       *vector_flags],
     extra_ldflags=["-L" + libs, "-l:libdnnl.so.3", "-Wl,-rpath," + libs])
"""


def _compile(target: str) -> None:
    folder = os.path.dirname(target)
    log_path = os.path.join(folder, "build.log")
    with tempfile.TemporaryDirectory(prefix="build_", dir=folder) as work:
        sources = ",".join(os.path.join(SOURCE_DIR, name) for name in SOURCES
                           if name.endswith(".cc"))
        with open(log_path, "w", encoding="utf-8") as log:
            result = subprocess.run(
                [sys.executable, "-c", _BUILD_SCRIPT, sources, include_dir(), SOURCE_DIR,
                 _paddle_libs(), work, NAME, *_vector_flags()], stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONWARNINGS="ignore"))
        built = os.path.join(work, NAME, NAME + ".so")
        if result.returncode != 0 or not os.path.isfile(built):
            raise BuildFailed(f"compiling the oneDNN operators failed (exit status "
                              f"{result.returncode}); the compiler's output is in {log_path}")
        os.replace(built, target)  # atomic: a reader sees no file or the whole library


def ensure_built(say: Callable[[str], None]) -> str:
    """The path of the built operator, compiling it first if this machine has not."""
    target = built_library()
    if os.path.isfile(target):
        return target
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the OS if this process dies
        if not os.path.isfile(target):  # another process may have built it meanwhile
            say("compiling the oneDNN operators once (~40 s; cached in "
                f"{folder})")
            _compile(target)
    return target
