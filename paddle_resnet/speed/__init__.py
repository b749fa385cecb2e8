"""Speed paths: how a run computes faster than Paddle's defaults, in one place.

`plan_speed(options, place, processes)` decides, once per process and before any model
exists, what a run uses: the convolution (oneDNN's on a CPU, `onednn_conv.py`; Paddle's
elsewhere or when it cannot be built), the layout (NHWC where oneDNN convolves, as its
fast kernels want; NCHW otherwise), residual basic blocks and DenseNet's layers and
transitions as one operator each where oneDNN convolves
(`fused_block.py`, `fused_norm_conv.py`; their passes in the vector code the CPU has, or
that `ONEDNN_MAX_CPU_ISA` caps it to, `onednn_build.py`), the
faster input gradient of narrow convolutions on Paddle's kernels (`conv_grad.py`), the CPU
threads, MKL's fast path on AMD CPUs (`mkl.py`) and glibc's allocator keeping freed memory
(`malloc.py`), both set where a run starts.
`apply_speed(model, plan)` (apply.py) then applies it to a model built in
`plan.data_format`.

The contract every path keeps:
- training only, in dygraph: a static graph (`to_static`, export, Paddle Inference), a GPU
  or another dtype takes Paddle's own kernels, layer by layer;
- parameter names, shapes and checkpoints are those of the plain model (convolution
  weights stay OIHW in every layout), so checkpoints move freely between paths;
- results equal Paddle's own path to float32 rounding (tests/test_onednn_conv.py,
  tests/test_conv_grad.py), except bf16 convolutions (`speed.conv_bf16`), which round
  training's convolution inputs to bfloat16 where the CPU has bf16 kernels: adopted for
  their speed at the same accuracy over seeds (docs/performance.md), `false` turns them off;
- where a path cannot run (it cannot be built, or its operators fail a trial run on a tiny
  network, trial.py), the run takes the next one and says why in one line
  (`SpeedPlan.note`); `speed.conv=onednn` asks for oneDNN and fails instead.
"""
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional, Tuple

from ..cpu import BF16_EXTENSIONS, usable_cores, vector_extension
from ..errors import ConfigError
from .apply import apply_speed  # noqa: F401  (the package's API: plan, then apply)
from .malloc import ensure_freed_memory_kept
from .mkl import ensure_mkl_fast_path
from .threads import use_threads


# apply_speed's count of each fused operator -> what the run header calls its layers
FUSED_PATHS = {"fused_block": "basic blocks", "fused_norm_conv": "dense layers and transitions"}


@dataclass(frozen=True)
class SpeedPlan:
    conv: str  # "onednn" or "paddle"
    data_format: str  # the model's layout, and the training batches'
    conv_input_grad: bool  # conv_grad.py on the layers Paddle convolves
    threads: int  # CPU threads per process (0: the device is a GPU)
    bf16: bool = False
    onednn_norm: bool = False  # batch normalization (+ ReLU, + residual add) on oneDNN
    # the fused operators (speed.fused_block): residual basic blocks (fused_block.py) and
    # DenseNet's layers and transitions (fused_norm_conv.py), one operator each
    fused_block: bool = False
    fused_paths: Tuple[str, ...] = tuple(FUSED_PATHS)  # those a model took (as_applied)
    library: Optional[str] = None  # the built oneDNN operator
    note: str = ""  # why a path asked for is not taken
    # oneDNN's ISA cap below bf16 ("ONEDNN_MAX_CPU_ISA=AVX2"), which changes its kernels
    # and the operators' passes, and so how a step rounds: part of the arithmetic
    isa_cap: str = ""

    def as_applied(self, switched: Mapping[str, int]) -> "SpeedPlan":
        """The plan as `apply_speed` carried it out on one model (`switched`, its counts): a
        model takes only the fused operators that fit its layers (a bottleneck ResNet none),
        and its run header should say which."""
        taken = tuple(path for path in self.fused_paths
                      if self.fused_block and switched.get(path, 0) > 0)
        return replace(self, fused_block=bool(taken), fused_paths=taken)

    def describe(self) -> str:
        """The run header's line on speed paths."""
        line = self.arithmetic()
        if self.threads:
            line += f"; glibc memory reuse {ensure_freed_memory_kept()}"
        return line

    def arithmetic(self) -> str:
        """`describe()` without what cannot change a result (glibc's allocator): the kernels,
        their input precision, layout and threads, each of which rounds differently."""
        if self.conv == "onednn":
            conv = "oneDNN" + (" (bf16 inputs)" if self.bf16 else "")
            if self.isa_cap:
                conv += f", capped by {self.isa_cap}"
            if self.fused_block:
                conv += "".join(f"; {FUSED_PATHS[path]}: one operator each"
                                for path in self.fused_paths)
            if self.onednn_norm:
                conv += "; batch norm (+ ReLU, + residual add): oneDNN"
        else:
            conv = "Paddle's" + (" (input gradient as a forward convolution where it pays)"
                                 if self.conv_input_grad else "")
        line = f"convolution: {conv}; layout {self.data_format}"
        if self.threads:
            line += (f"; {self.threads} thread{'s' if self.threads > 1 else ''} per process;"
                     f" MKL fast path {ensure_mkl_fast_path()}")
        return line


def plan_speed(options: Mapping, place: str, processes: int = 1,
               say: Callable[[str], None] = print) -> SpeedPlan:
    """The speed paths for a run on `place` with `processes` processes. `options` maps the
    config's `speed.*` keys; `say` gets the line that announces a compile; a fallback's
    reason is in the plan's `note`.
    Builds the oneDNN operator if needed, so call it in the parent before workers start."""
    choice = options["speed.conv"]  # one of the schema's choices (config.py)
    on_cpu = place == "cpu"
    conv, library, note = "paddle", None, ""
    if options["speed.to_static"]:  # a traced model runs Paddle's kernels (the contract)
        if choice == "onednn":
            raise ConfigError("speed.conv = onednn runs in dygraph, but speed.to_static = true "
                              "traces the model; set speed.conv=auto or speed.to_static=false")
        choice = "paddle"
    if choice != "paddle":
        from . import onednn_build
        reason = onednn_build.unavailable_reason(place)
        if reason is None:
            try:
                library = onednn_build.ensure_built(say)
                from .onednn_conv import register
                register(library)
                conv = "onednn"
            except (onednn_build.BuildFailed, OSError, RuntimeError) as e:
                reason = str(e)
        if reason is not None:
            if choice == "onednn":
                raise ConfigError(f"speed.conv = onednn, but {reason}; set speed.conv=auto "
                                  "or paddle")
            if on_cpu:  # on a GPU Paddle's convolution is the plan, not a fallback
                note = f"oneDNN convolution unavailable: {reason}; using Paddle's"
    channels_last = options["speed.channels_last"]
    if channels_last is None:
        channels_last = conv == "onednn"
    threads = 0
    if on_cpu:
        threads = max(1, usable_cores() // max(1, processes))
        use_threads(threads)
    bf16 = _conv_bf16(options["speed.conv_bf16"], conv)
    if options["speed.conv_bf16"] is not False and conv == "onednn" and not bf16:
        # The default asks for bf16 too: a CPU without its kernels gets the float32 path,
        # and says so, since it trains slower than the README's numbers.
        note = _joined(note, bf16_unavailable(vector_extension()))
    fused_block = _fused_block(options["speed.fused_block"], conv)
    if options["speed.fused_block"] and conv != "onednn":
        note = _joined(note, _no_fused_block(options, place))
    plan = SpeedPlan(conv=conv, data_format="NHWC" if channels_last else "NCHW",
                     conv_input_grad=bool(options["speed.conv_input_grad"]) and on_cpu,
                     threads=threads, bf16=bf16,
                     onednn_norm=_onednn_norm(options["speed.onednn_norm"], conv, threads,
                                              fused_block),
                     fused_block=fused_block,
                     library=library, note=note, isa_cap=_isa_cap(conv))
    if conv != "onednn":
        return plan
    return _first_that_runs(plan, choice, options["speed.channels_last"])


def _first_that_runs(plan: SpeedPlan, choice: str, channels_last: Optional[bool]) -> SpeedPlan:
    """`plan`, or the first of its slower forms whose operators pass a trial run here
    (trial.py): float32 convolutions, then also the per-layer path, then Paddle's
    convolution (which `speed.conv=onednn` refuses)."""
    from .trial import failure
    reason = failure(plan)
    if reason is None:
        return plan
    failed = f"the oneDNN operators failed a trial run ({reason})"
    float32 = replace(plan, bf16=False)
    per_layer = replace(float32, fused_block=False, onednn_norm=False)
    tried = {plan}  # a form equal to one before (a plan already in float32) is not retried
    for fallback, how in ((float32, "convolving in float32"),
                          (per_layer, "convolving in float32, layer by layer")):
        if fallback in tried:
            continue
        tried.add(fallback)
        if failure(fallback) is None:
            return replace(fallback, note=_joined(plan.note, f"{failed}; {how}"))
    if choice == "onednn":
        raise ConfigError(f"speed.conv = onednn, but {failed}; set speed.conv=auto or paddle")
    return replace(plan, conv="paddle", data_format="NHWC" if channels_last else "NCHW",
                   bf16=False, onednn_norm=False, fused_block=False, library=None,
                   isa_cap="", note=_joined(plan.note, f"{failed}; using Paddle's convolution"))


def _joined(*notes: str) -> str:
    return "; ".join(filter(None, notes))


def _isa_cap(conv: str) -> str:
    """`VARIABLE=value` of oneDNN's ISA cap below bf16 where oneDNN convolves, else ''."""
    if conv != "onednn":
        return ""
    from .onednn_build import isa_cap
    cap = isa_cap()
    return "=".join(cap) if cap else ""


def native_bf16() -> bool:
    """Whether this CPU has bfloat16 dot products (AVX-512 BF16 or AMX), oneDNN's fast
    bf16 kernels, and oneDNN's ISA cap leaves them; elsewhere oneDNN emulates bf16,
    slower than float32."""
    from paddle.base import core
    from .onednn_build import cap_allows_bf16
    return cap_allows_bf16() and bool(core.supports_bfloat16_fast_performance())


def bf16_unavailable(extension: str) -> str:
    """The note of a run that asked for bf16 convolutions (or took the default) on a CPU
    without bf16 dot products."""
    cap = _isa_cap("onednn")
    if extension in BF16_EXTENSIONS and cap:
        has = f"this one has {extension}, and {cap} caps oneDNN below those kernels; "
    elif extension in BF16_EXTENSIONS:
        has = f"this one has {extension}, which this Paddle build does not use; "
    else:
        has = f"this one has {extension}; " if extension else ""
    return (f"speed.conv_bf16 needs a CPU with {' or '.join(reversed(BF16_EXTENSIONS))} "
            f"({has}emulated bf16 is slower than float32); convolving in float32")


def _conv_bf16(choice: Optional[bool], conv: str) -> bool:
    # bf16 kernels where the CPU has them: 1.25x the whole quickstart from outside, with
    # the same test accuracy over seeds as float32 (docs/performance.md); never emulated.
    return conv == "onednn" and choice is not False and native_bf16()


def _onednn_norm(choice: Optional[bool], conv: str, threads: int, fused_block: bool) -> bool:
    if conv != "onednn":
        return False
    # oneDNN's normalization parallelises over threads, Paddle's does not. With two threads
    # in one process it measured 1.13x ResNet-20's per-layer step, but 0.97x ResNet-50's
    # (its bottlenecks, which no fused operator takes) and a wash beside the fused blocks,
    # which normalise in their own passes; with one thread 0.97x ResNet-20's (performance.md).
    return threads > 1 and not fused_block if choice is None else bool(choice)


def _fused_block(choice: Optional[bool], conv: str) -> bool:
    if conv != "onednn":
        return False
    # Measured with bf16 inputs and one thread per process: 1.23x ResNet-20's step and
    # 1.17x ResNet-18's, the same test accuracy over seeds; 1.42x DenseNet-40's and 1.56x
    # DenseNet-BC-100's, the per-layer path's results to float32 rounding. In float32 with
    # AVX2 code throughout (ONEDNN_MAX_CPU_ISA=AVX2, which caps the operators' passes too):
    # 1.08x ResNet-20's, 1.02x ResNet-18's, 1.32x DenseNet-40's. With two threads in one
    # process (--nproc 1, the library's train, more cores than 32-image shares): 1.42x
    # ResNet-20's, 1.13x ResNet-18's, 1.62x DenseNet-40's (docs/performance.md).
    # More threads were not measured (2 cores here); the operators' own passes run in one.
    return True if choice is None else bool(choice)


def _no_fused_block(options: Mapping, place: str) -> str:
    if place != "cpu":
        why = f"the device is {place}"
    elif options["speed.to_static"] or options["speed.conv"] == "paddle":
        why = ("speed.to_static=true here" if options["speed.to_static"]
               else "speed.conv=paddle here")
    else:
        why = "it is unavailable"
    return f"speed.fused_block needs the oneDNN convolution ({why}); using the per-layer path"
