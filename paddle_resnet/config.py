"""The run configuration: defaults < yaml file < `-o key.sub=value` overrides.

Every option is declared once in schema.py's SCHEMA. The merged result is validated
once, then frozen; models, data and the engine receive plain values from it.
"""
import copy
import difflib
import os
import re
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import yaml

from .errors import ConfigError
# SCHEMA, Option and document() are read from here too (tools/gen_docs.py, the tests).
from .schema import (MODEL_NAMES_HINT, SCHEMA, SECTIONS, Option, _coerce,  # noqa: F401
                     document)


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
    from .data.cifar import NUM_CLASSES
    classes = NUM_CLASSES[resolved["data.dataset"]]
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
    from .data.augment import AUGMENTATIONS  # loaded by data.augment's check above
    augment = resolved["data.augment"]
    if resolved["data.flip"] == "alternating" and AUGMENTATIONS[augment].mirror is None:
        raise ConfigError(f"{where}data.flip = alternating mirrors what the augmentation "
                          f"flips, but data.augment = {augment} flips nothing; set "
                          "data.augment=standard or data.flip=random")
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
