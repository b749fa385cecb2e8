"""Every config key, declared once: its default, type, allowed values and a one-line
description (docs/config.md is generated from it, `document()`), and the check of one
value against it. config.py merges and validates whole configs against this."""
import importlib
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple, Union

import yaml

from .errors import ConfigError

MODEL_NAMES_HINT = "see `python tools/summary.py` or docs/models.md"


class NamesOf:
    """The names of a table in the code that handles them, the one place they are written:
    a new optimizer, schedule, dataset, augmentation or shortcut is one entry there, and
    the schema, the validation and docs/config.md follow. The tables sit below the schema
    (optim.py, data/, models/; tests/test_layering.py counts each reference as an import)
    and are read on first use, so that importing the schema stays free of Paddle and numba
    (only a config being validated needs them)."""

    def __init__(self, module: str, table: str):
        self.module, self.table = module, table

    def _names(self) -> Tuple[str, ...]:
        return tuple(getattr(importlib.import_module(self.module), self.table))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, value: Any) -> bool:
        return value in self._names()

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"NamesOf({self.module}.{self.table})"


@dataclass(frozen=True)
class Option:
    default: Any
    kind: type  # int, float, str, bool, list (of floats) or dict (model.kwargs)
    doc: str
    choices: Optional[Union[Tuple[Any, ...], NamesOf]] = None
    low: Optional[float] = None  # inclusive
    high: Optional[float] = None  # inclusive
    low_exclusive: bool = False
    high_exclusive: bool = False
    nullable: bool = False
    null_means: str = ""


SCHEMA: Dict[str, Option] = {
    # --- model -----------------------------------------------------------------------
    "model.name": Option("resnet20", str, f"registered model name ({MODEL_NAMES_HINT})"),
    "model.num_classes": Option(None, int, "number of output classes", low=2, nullable=True,
                                null_means="taken from the dataset (10 or 100)"),
    "model.depth": Option(None, int, "depth for `cifar_resnet`/`cifar_plain` (6n+2)", low=8,
                          high=2000, nullable=True, null_means="the model's own depth"),
    "model.shortcut": Option(None, str, "shortcut option of He et al. Sec. 3.3",
                             choices=NamesOf("paddle_resnet.models.resnet",
                                             "SHORTCUT_OPTIONS"), nullable=True,
                             null_means="the paper's choice: A for CIFAR nets, B for 18-152"),
    "model.zero_init_residual": Option(None, bool, "zero-init the last BN of each residual "
                                       "branch (arXiv:1706.02677)", nullable=True,
                                       null_means="off"),
    "model.kwargs": Option({}, dict, "further arguments of the model's builder, e.g. "
                           "`{stem_channels: 32}`; checked against the arguments it takes "
                           "(the last column of docs/models.md)"),
    # --- data ------------------------------------------------------------------------
    "data.dataset": Option("cifar10", str, "dataset",
                           choices=NamesOf("paddle_resnet.data.cifar", "NUM_CLASSES")),
    "data.data_file": Option(None, str, "local archive in the official python layout "
                             "(cifar-10-python.tar.gz / cifar-100-python.tar.gz)",
                             nullable=True, null_means="Paddle's cache, downloaded if absent"),
    "data.train_samples": Option(None, int, "use a deterministic subset of this many "
                                 "training images", low=1, nullable=True, null_means="all"),
    "data.test_samples": Option(None, int, "use a deterministic subset of this many test "
                                "images", low=1, nullable=True, null_means="all"),
    "data.val_samples": Option(0, int, "hold out this many training images as a validation "
                               "set and select `best` on it (the paper's split: 5000)", low=0),
    "data.augment": Option("standard", str, "training augmentation: `standard` = 4-pixel "
                           "pad, random 32x32 crop, horizontal flip; `notebook` = random "
                           "horizontal and vertical flips and colour jitter; `none`",
                           choices=NamesOf("paddle_resnet.data.augment", "AUGMENTATIONS")),
    "data.flip": Option("random", str, "how the augmentation's left-right flips fall across "
                        "epochs: `random` = drawn anew for each image every epoch (He et al.); "
                        "`alternating` = drawn in the first epoch, then each image the other "
                        "way round from its previous one (arXiv:2404.00498), so every two "
                        "epochs show every image both ways",
                        choices=NamesOf("paddle_resnet.data.augment", "FLIPS")),
    "data.augment_on": Option("host", str, "where augmentation runs: `host` = compiled "
                              "numpy kernels on the CPU cores; `device` = Paddle operators on "
                              "the training device (for GPUs: uint8 batches cross, the host "
                              "is free); same random parameters, same images to rounding",
                              choices=NamesOf("paddle_resnet.data.loader", "AUGMENT_ON")),
    # --- training --------------------------------------------------------------------
    "train.epochs": Option(20, int, "number of epochs", low=1),
    "train.batch_size": Option(128, int, "images per optimisation step", low=1),
    "train.label_smoothing": Option(0.0, float, "label smoothing epsilon", low=0.0, high=1.0,
                                    high_exclusive=True),
    "train.grad_clip": Option(None, float, "clip gradients to this global L2 norm", low=0.0,
                              low_exclusive=True, nullable=True, null_means="no clipping"),
    "train.eval_every": Option(1, int, "evaluate every k epochs (and always after the last)",
                               low=1),
    "train.log_every": Option(50, int, "print a progress line every N iterations", low=1),
    "train.checkpoint_every": Option(0, int, "also keep `epoch_NNN` every k epochs "
                                     "(0 = only `latest` and `best`)", low=0),
    # --- evaluation ------------------------------------------------------------------
    "eval.engine": Option("auto", str, "how evaluation (each epoch and tools/eval.py) runs "
                          "the model: `inference` = its static program under Paddle "
                          "Inference with oneDNN (CPU only; several times dygraph's speed, "
                          "same predictions), `dygraph` = eagerly, `auto` = inference on the "
                          "CPU, dygraph on GPUs", choices=("auto", "dygraph", "inference")),
    "eval.precision": Option("float32", str, "precision of eval.engine=inference: `bfloat16` "
                             "runs oneDNN's bf16 kernels (CPUs with AVX-512; faster, top-1 "
                             "measured in docs/performance.md)", choices=("float32", "bfloat16")),
    "eval.tta": Option("none", str, "test-time augmentation: `flip` = each test image and its "
                       "horizontal mirror, their logits averaged (twice the evaluation's work; "
                       "+0.66 and +1.28 points on the shipped ResNet-20s, docs/results.md); "
                       "`flip_shift` = those two, each also moved one pixel up-left and "
                       "down-right (six views, six times the work; +0.12 points over two "
                       "views on average over seven ResNet-20 runs, docs/results.md); "
                       "`none` = the image alone, as He et al. evaluate",
                       choices=("none", "flip", "flip_shift")),
    "eval.threads": Option(0, int, "CPU threads for eval.engine=inference (0 = the cores "
                           "shared among the processes)", low=0),
    "eval.batch_size": Option(0, int, "test images per evaluation batch, over all processes "
                              "(0 = chosen per model: on a CPU the largest power of two per "
                              "process, up to its share of max(train.batch_size, 256), whose "
                              "widest activation stays clear of glibc's mmap threshold; "
                              "with it tools/eval.py ran DenseNet-40 1.95x as fast as at "
                              "256, docs/performance.md)", low=0),
    # --- speed switches (each off where it did not help on this project's CPU) ---------
    "speed.to_static": Option(False, bool, "run the model's forward pass as a static graph "
                              "(`paddle.jit.to_static`) in training; same numbers, no gain "
                              "measured on a CPU (docs/performance.md)"),
    "speed.amp": Option("off", str, "automatic mixed precision on GPUs: O1 (listed ops in "
                        "speed.amp_dtype) or O2 (the whole model, float32 master weights); "
                        "Paddle has no CPU AMP", choices=("off", "O1", "O2")),
    "speed.amp_dtype": Option("float16", str, "the low-precision type for speed.amp "
                              "(bfloat16 needs Ampere or newer)",
                              choices=("float16", "bfloat16")),
    "speed.loss_scale": Option(32768.0, float, "initial dynamic loss scale for speed.amp "
                               "with float16", low=1.0),
    "speed.conv": Option("auto", str, "the training convolution: `onednn` = oneDNN's "
                         "kernels through the package's C++ operator (CPU, compiled once on "
                         "first use; fails if it cannot be built), `paddle` = Paddle's own, "
                         "`auto` = oneDNN on a CPU where it builds, else Paddle's (saying why)",
                         choices=("auto", "onednn", "paddle")),
    "speed.onednn_norm": Option(None, bool, "with the oneDNN convolution, also run training's "
                                "batch normalization on oneDNN, fused with the ReLU after it, "
                                "and residual blocks' add + ReLU in one pass; same statistics, "
                                "running averages and checkpoints", nullable=True,
                                null_means="on where it measured faster: a process with "
                                "several threads on the per-layer path (speed.fused_block="
                                "false: 1.13x ResNet-20's step in one process on 2 cores); off "
                                "with the fused operators (0.97x ResNet-50's step there), and "
                                "with one thread (0.97x, docs/performance.md)"),
    "speed.fused_block": Option(None, bool, "with the oneDNN convolution, run each residual "
                                "basic block's training pass (conv-BN-ReLU-conv-BN-add-ReLU, "
                                "any shortcut) and each DenseNet layer and transition "
                                "(BN-ReLU-conv(s) with the concatenation or the pooling) as "
                                "one operator, forward and backward; same parameters, "
                                "statistics and checkpoints; bottleneck ResNet blocks keep the "
                                "per-layer path; `false` = per-layer throughout", nullable=True,
                                null_means="on wherever oneDNN convolves: with bf16 inputs "
                                "and one thread per process 1.23x ResNet-20's step, the same "
                                "test accuracy over seeds, 1.42x DenseNet-40's; in float32 "
                                "(AVX2 code) 1.08x and 1.32x; with two threads in one process "
                                "1.42x and 1.62x (docs/performance.md)"),
    "speed.conv_bf16": Option(None, bool, "with the oneDNN convolution, run training's "
                              "convolutions on bfloat16 copies of their inputs (float32 "
                              "accumulation, outputs, gradients and weights; evaluation stays "
                              "float32); `false` = float32 throughout; `true` or the default on "
                              "a CPU without bf16 kernels = float32, saying why", nullable=True,
                              null_means="on where the CPU has bf16 kernels (AVX-512 BF16 or "
                              "AMX): 1.25x the quickstart, the same test accuracy over seeds "
                              "(docs/performance.md); float32 elsewhere"),
    "speed.channels_last": Option(None, bool, "compute in NHWC (channels-last) layout, which "
                                  "oneDNN's CPU kernels and tensor cores under AMP prefer; "
                                  "weights and checkpoints stay the same", nullable=True,
                                  null_means="NHWC where the oneDNN convolution runs, else "
                                  "NCHW"),
    "speed.conv_input_grad": Option(True, bool, "on the CPU, compute the input gradient of "
                                    "stride-1 convolutions that narrow or have at most 32 "
                                    "output channels as a forward convolution with the "
                                    "flipped kernel, faster there than Paddle's CPU "
                                    "conv2d_grad; same parameters and checkpoints, gradients "
                                    "equal to float32 rounding (ignored on GPUs)"),
    "speed.pin_memory": Option(True, bool, "on GPUs, copy batches through page-locked host "
                               "memory without blocking the host (ignored on the CPU)"),
    # --- logging and diagnostics -----------------------------------------------------
    "log.visualdl": Option(True, bool, "write VisualDL records into output_dir "
                           "(`visualdl --logdir output` shows every run)"),
    "log.histogram_every": Option(5, int, "weight and gradient histograms every k epochs "
                                  "(0 = never)", low=0),
    "log.grad_vanish_below": Option(1e-6, float, "warn when a stage's gradient L2 norm falls "
                                    "below this at a logged step", low=0.0),
    "log.grad_explode_above": Option(1e3, float, "warn when a stage's gradient L2 norm rises "
                                     "above this at a logged step", low=0.0,
                                     low_exclusive=True),
    # --- several processes (python -m paddle.distributed.launch, or train.py --nproc) ---
    "dist.sync_bn": Option(False, bool, "SyncBatchNorm across GPUs (BN statistics over the "
                           "global batch); GPU only, as Paddle has no CPU kernel for it"),
    "dist.shared_memory": Option(None, bool, "CPU processes of one host average their "
                                 "gradients (and make their other all-reduces) through shared "
                                 "memory instead of Paddle's DataParallel over gloo; the same "
                                 "numbers (bit for bit with two processes); `true` fails where "
                                 "it cannot open, `false` = DataParallel", nullable=True,
                                 null_means="on for several CPU processes on x86-64 Linux "
                                 "(the quickstart 1.24x and 1.14x DataParallel's in two "
                                 "runs, docs/performance.md); elsewhere DataParallel, "
                                 "saying why in one line"),
    # --- optimiser and schedule --------------------------------------------------------
    "optimizer.name": Option("sgd", str, "optimiser",
                             choices=NamesOf("paddle_resnet.optim", "OPTIMIZERS")),
    "optimizer.lr": Option(0.1, float, "peak learning rate", low=0.0, low_exclusive=True),
    "optimizer.momentum": Option(0.9, float, "SGD momentum", low=0.0, high=1.0,
                                 high_exclusive=True),
    "optimizer.nesterov": Option(False, bool, "Nesterov momentum for SGD"),
    "optimizer.weight_decay": Option(1e-4, float, "L2 weight decay (decoupled for adamw)",
                                     low=0.0),
    "optimizer.betas": Option([0.9, 0.999], list, "Adam/AdamW betas"),
    "schedule.name": Option("multistep", str, "learning-rate schedule, stepped every "
                            "iteration",
                            choices=NamesOf("paddle_resnet.optim", "SCHEDULES")),
    "schedule.milestones": Option([0.5, 0.75], list, "multistep: fractions of the run at "
                                  "which the rate drops (He et al.: 32k/48k of 64k iterations)"),
    "schedule.gamma": Option(0.1, float, "multistep: factor applied at each milestone",
                             low=0.0, low_exclusive=True, high=1.0),
    "schedule.warmup_epochs": Option(0.0, float, "linear warm-up from 0 over this many "
                                     "epochs (fractions allowed)", low=0.0),
    "schedule.min_lr": Option(0.0, float, "cosine/onecycle: final learning rate", low=0.0),
    "schedule.pct_start": Option(0.3, float, "onecycle: fraction of the run spent rising",
                                 low=0.0, high=1.0, low_exclusive=True, high_exclusive=True),
    # --- run ---------------------------------------------------------------------------
    "seed": Option(0, int, "seed for weights, data order and augmentation", low=0),
    "device": Option("auto", str, "`auto` (GPU if Paddle has CUDA and one is visible, "
                     "else CPU), `cpu`, `gpu` or `gpu:N`"),
    "output_dir": Option(None, str, "directory for checkpoints, logs and the resolved "
                         "config", nullable=True, null_means="output/<model.name>"),
}

SECTIONS = sorted({key.split(".")[0] for key in SCHEMA if "." in key})


def _describe_allowed(key: str, option: Option) -> str:
    if option.choices:
        allowed = "one of " + ", ".join(str(c) for c in option.choices)
    elif option.kind is bool:
        allowed = "true or false"
    elif option.kind is list:
        allowed = "a list of numbers, e.g. [0.5, 0.75]"
    elif option.kind is dict:
        allowed = "a mapping of argument names to values, e.g. {stem_channels: 32}"
    elif option.kind in (int, float):
        noun = "an integer" if option.kind is int else "a number"
        bounds = []
        if option.low is not None:
            bounds.append((">" if option.low_exclusive else ">=") + f" {option.low:g}")
        if option.high is not None:
            bounds.append(("<" if option.high_exclusive else "<=") + f" {option.high:g}")
        allowed = noun + (" " + " and ".join(bounds) if bounds else "")
    else:
        allowed = "a string"
    if option.nullable:
        allowed += " or null"
    return allowed


def _bad_value(key: str, value: Any, option: Option, where: str) -> ConfigError:
    return ConfigError(f"{where}{key} = {value!r} is not allowed; expected "
                       f"{_describe_allowed(key, option)}")


def _coerce(key: str, value: Any, option: Option, where: str) -> Any:
    """Check one value against its option; ints are accepted where floats are expected."""
    if value is None:
        if option.nullable:
            return None
        raise _bad_value(key, value, option, where)
    kind = option.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise _bad_value(key, value, option, where)
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad_value(key, value, option, where)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_value(key, value, option, where)
        value = float(value)
        if not math.isfinite(value):
            raise _bad_value(key, value, option, where)
    elif kind is str:
        if not isinstance(value, str):
            raise _bad_value(key, value, option, where)
    elif kind is list:
        if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in value):
            raise _bad_value(key, value, option, where)
        value = [float(v) for v in value]
    elif kind is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _bad_value(key, value, option, where)
    if option.choices and value not in option.choices:
        raise _bad_value(key, value, option, where)
    if kind in (int, float):
        too_low = option.low is not None and (
            value <= option.low if option.low_exclusive else value < option.low)
        too_high = option.high is not None and (
            value >= option.high if option.high_exclusive else value > option.high)
        if too_low or too_high:
            raise _bad_value(key, value, option, where)
    return value


def document(options: Iterable[Tuple[str, Option]] = None) -> str:
    """docs/config.md's table of every key."""
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key, option in options or SCHEMA.items():
        default = "null" if option.default is None else yaml.safe_dump(
            option.default, default_flow_style=True).strip().removesuffix("\n...")
        meaning = option.doc + (f"; null = {option.null_means}" if option.null_means else "")
        rows.append(f"| `{key}` | `{default}` | {_describe_allowed(key, option)} | {meaning} |")
    return "\n".join(rows)
