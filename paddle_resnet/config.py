"""The run configuration: defaults < yaml file < `-o key.sub=value` overrides.

Every option is declared once in SCHEMA with its default, type, allowed values and a
one-line description (docs/config.md is generated from it). The merged result is
validated once, then frozen; models, data and the engine receive plain values from it.
"""
import copy
import difflib
import math
import os
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import yaml

from .errors import ConfigError



class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string; YAML 1.2 and every
    user reading `lr: 1e-3` take it as a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml_load(stream):
    return yaml.load(stream, Loader=_Loader)


MODEL_NAMES_HINT = "see `python tools/summary.py` or docs/models.md"


@dataclass(frozen=True)
class Option:
    default: Any
    kind: type  # int, float, str, bool, list (of floats) or dict (model.kwargs)
    doc: str
    choices: Optional[Tuple[Any, ...]] = None
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
                             choices=("A", "B", "C"), nullable=True,
                             null_means="the paper's choice: A for CIFAR nets, B for 18-152"),
    "model.zero_init_residual": Option(None, bool, "zero-init the last BN of each residual "
                                       "branch (arXiv:1706.02677)", nullable=True,
                                       null_means="off"),
    "model.kwargs": Option({}, dict, "further arguments of the model's builder, e.g. "
                           "`{stem_channels: 32}`; checked against the arguments it takes "
                           "(the last column of docs/models.md)"),
    # --- data ------------------------------------------------------------------------
    "data.dataset": Option("cifar10", str, "dataset", choices=("cifar10", "cifar100")),
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
                           choices=("standard", "notebook", "none")),
    "data.augment_on": Option("host", str, "where augmentation runs: `host` = compiled "
                              "numpy kernels on the CPU cores; `device` = Paddle operators on "
                              "the training device (for GPUs: uint8 batches cross, the host "
                              "is free); same random parameters, same images to rounding",
                              choices=("host", "device")),
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
    "eval.threads": Option(0, int, "CPU threads for eval.engine=inference (0 = the cores "
                           "shared among the processes)", low=0),
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
                                "several threads (1.10x ResNet-20's step in one process on 2 "
                                "cores; 0.97x with one thread, docs/performance.md)"),
    "speed.conv_bf16": Option(False, bool, "with the oneDNN convolution, round its inputs to "
                              "bfloat16 inside the kernels (float32 outputs, weights and "
                              "gradients; CPUs with AVX-512 BF16)"),
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
    # --- optimiser and schedule --------------------------------------------------------
    "optimizer.name": Option("sgd", str, "optimiser", choices=("sgd", "adam", "adamw")),
    "optimizer.lr": Option(0.1, float, "peak learning rate", low=0.0, low_exclusive=True),
    "optimizer.momentum": Option(0.9, float, "SGD momentum", low=0.0, high=1.0,
                                 high_exclusive=True),
    "optimizer.nesterov": Option(False, bool, "Nesterov momentum for SGD"),
    "optimizer.weight_decay": Option(1e-4, float, "L2 weight decay (decoupled for adamw)",
                                     low=0.0),
    "optimizer.betas": Option([0.9, 0.999], list, "Adam/AdamW betas"),
    "schedule.name": Option("multistep", str, "learning-rate schedule, stepped every "
                            "iteration", choices=("constant", "multistep", "cosine", "onecycle")),
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


def _unknown_key(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(SCHEMA) + SECTIONS, n=1, cutoff=0.5)
    if not close:
        leaf = key.split(".")[-1]
        close = [k for k in SCHEMA if k.split(".")[-1] == leaf][:1]
    hint = f"did you mean {close[0]}?" if close else "see docs/config.md for the valid keys"
    return ConfigError(f"{where}unknown config key {key!r}; {hint}")


def _flatten(tree: Mapping, where: str, prefix: str = "") -> Dict[str, Any]:
    flat = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if not isinstance(name, str):
            raise ConfigError(f"{where}config keys must be strings, got {name!r}")
        if key in SCHEMA:
            flat[key] = value
        elif name in SECTIONS and not prefix:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}section {key!r} must be a mapping of its keys "
                                  f"(e.g. {next(k for k in SCHEMA if k.startswith(key + '.'))}"
                                  f": ...), got {value!r}")
            flat.update(_flatten(value, where, prefix=f"{key}."))
        else:
            raise _unknown_key(key, where)
    return flat


def _read_yaml(path: str) -> Dict[str, Any]:
    if not os.path.exists(path):
        raise ConfigError(f"config file {path} does not exist; pass an existing yaml file "
                          "with -c (see configs/)")
    try:
        with open(path, encoding="utf-8") as f:
            tree = _yaml_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid syntax"
        raise ConfigError(f"{path}: invalid yaml{line}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; pass a yaml config") from None
    if tree is None:  # an empty or all-comment file would silently train the defaults
        raise ConfigError(f"{path}: the config file is empty; give at least model.name, or "
                          "start from one of configs/ (e.g. configs/quickstart.yaml)")
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections "
                          f"({', '.join(SECTIONS)}), got {type(tree).__name__}")
    return tree


def parse_override(text: str) -> Tuple[str, Any]:
    """`key.sub=value`, the value read as a yaml scalar or flow list (never eval'd)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value, "
                          "e.g. -o train.epochs=5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has no key; use key.sub=value")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: cannot parse the value {raw!r}; quote "
                          "strings that contain yaml syntax") from None
    if isinstance(value, dict):
        raise ConfigError(f"override {text!r}: set one key at a time, e.g. -o {key}.sub=1")
    return key, value


class Config(Mapping):
    """A frozen, validated configuration. `cfg["train.epochs"]` or `cfg.train.epochs`."""

    def __init__(self, flat: Mapping[str, Any]):
        object.__setattr__(self, "_flat", MappingProxyType(dict(flat)))

    def __getitem__(self, key):
        return copy.deepcopy(self._flat[key])

    def __iter__(self):
        return iter(self._flat)

    def __len__(self):
        return len(self._flat)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._flat:
            return self[name]
        if name in SECTIONS:
            return _Section(self, name)
        raise AttributeError(f"no config key or section {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError("the config is frozen after validation")

    def to_dict(self) -> Dict[str, Any]:
        tree: Dict[str, Any] = {}
        for key, value in self._flat.items():
            node = tree
            *parents, leaf = key.split(".")
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = copy.deepcopy(value)
        return tree

    def dump(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    def model_kwargs(self) -> Dict[str, Any]:
        return {"num_classes": self["model.num_classes"], "depth": self["model.depth"],
                "shortcut": self["model.shortcut"],
                "zero_init_residual": self["model.zero_init_residual"],
                "data_format": "NHWC" if self["speed.channels_last"] else None,
                **self["model.kwargs"]}


class _Section:
    def __init__(self, config: Config, name: str):
        self._config, self._name = config, name

    def __getattr__(self, leaf):
        key = f"{self._name}.{leaf}"
        if key not in self._config:
            raise AttributeError(f"no config key {key!r}")
        return self._config[key]


def defaults() -> Dict[str, Any]:
    return {key: copy.deepcopy(option.default) for key, option in SCHEMA.items()}


def _check_model_kwargs(name: str, kwargs: Dict[str, Any], where: str) -> None:
    from .models.registry import CONFIG_ARGUMENTS, model_info
    takes = [a for a in model_info(name).arguments if a not in CONFIG_ARGUMENTS]
    for argument in kwargs:
        if argument in CONFIG_ARGUMENTS:
            raise ConfigError(f"{where}model.kwargs.{argument}: set "
                              f"{CONFIG_ARGUMENTS[argument]} instead")
        if argument not in takes:
            raise ConfigError(f"{where}model.kwargs.{argument}: {name} takes no such argument; "
                              f"it takes {', '.join(takes) or 'none beyond the model.* keys'}")


def validate(flat: Mapping[str, Any], where: str = "") -> Config:
    from .models import list_models  # late: keeps `import paddle` out of config parsing

    resolved = {}
    for key, value in flat.items():
        if key not in SCHEMA:
            raise _unknown_key(key, where)
        resolved[key] = _coerce(key, value, SCHEMA[key], where)
    name = resolved["model.name"]
    if name not in list_models():
        from .models.registry import closest_models
        close = closest_models(name)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"{where}model.name = {name!r} is not a known model; {hint}"
                          f"{MODEL_NAMES_HINT}")
    _check_model_kwargs(name, resolved["model.kwargs"], where)
    classes = {"cifar10": 10, "cifar100": 100}[resolved["data.dataset"]]
    if resolved["model.num_classes"] is None:
        resolved["model.num_classes"] = classes
    elif resolved["model.num_classes"] != classes:
        raise ConfigError(f"{where}model.num_classes = {resolved['model.num_classes']} but "
                          f"{resolved['data.dataset']} has {classes} classes; set it to "
                          f"{classes} or null")
    depth = resolved["model.depth"]
    if depth is not None and (name not in ("cifar_resnet", "cifar_plain") or (depth - 2) % 6):
        if name not in ("cifar_resnet", "cifar_plain"):
            raise ConfigError(f"{where}model.depth applies only to cifar_resnet and "
                              f"cifar_plain, not {name}; set it to null")
        raise ConfigError(f"{where}model.depth = {depth} is not a CIFAR ResNet depth; use "
                          "6n+2: 20, 32, 44, 56, 110, ...")
    if name in ("cifar_resnet", "cifar_plain") and depth is None:
        raise ConfigError(f"{where}model.name = {name} needs model.depth (6n+2, e.g. 74)")
    milestones = resolved["schedule.milestones"]
    if any(not 0 < m < 1 for m in milestones) or milestones != sorted(milestones):
        raise ConfigError(f"{where}schedule.milestones = {milestones} must be increasing "
                          "fractions of the run between 0 and 1, e.g. [0.5, 0.75]")
    if resolved["schedule.warmup_epochs"] >= resolved["train.epochs"]:
        raise ConfigError(f"{where}schedule.warmup_epochs = {resolved['schedule.warmup_epochs']:g}"
                          f" spans the whole run of train.epochs = {resolved['train.epochs']}: "
                          "the learning rate would never reach optimizer.lr; make it shorter "
                          "than the run")
    betas = resolved["optimizer.betas"]
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"{where}optimizer.betas = {betas} must be two numbers in [0, 1)")
    device = resolved["device"]
    if not (device in ("auto", "cpu", "gpu") or
            (device.startswith("gpu:") and device[4:].isdigit())):
        raise ConfigError(f"{where}device = {device!r} is not allowed; expected auto, cpu, "
                          "gpu or gpu:N")
    if resolved["output_dir"] is None:
        resolved["output_dir"] = os.path.join("output", name)
    return Config(resolved)


def load_config(path: Optional[str] = None, overrides: Sequence[str] = (),
                base: Optional[Mapping[str, Any]] = None) -> Config:
    """defaults < `base` (a stored config, e.g. a checkpoint's) < yaml file < overrides,
    validated once."""
    flat = defaults()
    if base is not None:
        flat.update(_flatten(base, where="stored config: "))
    if path is not None:
        flat.update(_flatten(_read_yaml(path), where=f"{path}: "))
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith("model.kwargs.") and key.count(".") == 2:
            flat["model.kwargs"] = dict(flat.get("model.kwargs") or {},
                                        **{key.split(".")[2]: value})
            continue
        if key not in SCHEMA:
            raise _unknown_key(key, where=f"override {text!r}: ")
        flat[key] = value
    return validate(flat)


def document(options: Iterable[Tuple[str, Option]] = None) -> str:
    """docs/config.md's table of every key."""
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key, option in options or SCHEMA.items():
        default = "null" if option.default is None else yaml.safe_dump(
            option.default, default_flow_style=True).strip().removesuffix("\n...")
        meaning = option.doc + (f"; null = {option.null_means}" if option.null_means else "")
        rows.append(f"| `{key}` | `{default}` | {_describe_allowed(key, option)} | {meaning} |")
    return "\n".join(rows)
