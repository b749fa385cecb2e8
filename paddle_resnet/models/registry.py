"""A name -> builder registry, so a yaml file can say `model.name: resnet56`, with what
the rest of the package reads about each model (as torchvision's `register_model` and
`get_model_weights` keep metadata beside the builder): its family, its reference, and
the arguments it takes (`model.kwargs` is checked against them)."""
import difflib
import inspect
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import paddle.nn as nn

from ..errors import ModelArgumentError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Layer]
    family: str  # tables group by it: resnet, plain, densenet, ...
    reference: str  # paper and table, for docs/models.md
    arguments: Tuple[str, ...]  # keyword arguments the builder accepts


_MODELS: Dict[str, ModelInfo] = {}
# Builder arguments a config sets through keys (or a speed switch) of their own; the
# others a model takes come from `model.kwargs`.
CONFIG_ARGUMENTS = {"num_classes": "model.num_classes", "depth": "model.depth",
                    "shortcut": "model.shortcut",
                    "zero_init_residual": "model.zero_init_residual",
                    "data_format": "speed.channels_last"}


class UnknownModelError(ModelArgumentError):
    pass


def _arguments(builder: Callable, takes: Optional[Callable]) -> Tuple[str, ...]:
    """The builder's keyword arguments; a builder that forwards `**kwargs` names the
    callable it forwards them to (`takes`), whose arguments with defaults count."""
    params = list(inspect.signature(builder).parameters.values())
    names = [p.name for p in params
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind == p.VAR_KEYWORD for p in params):
        if takes is None:
            raise ValueError(f"model {builder.__name__!r} takes **kwargs: register it with "
                             "takes=<the class or builder they go to>")
        names += [p.name for p in inspect.signature(takes).parameters.values()
                  if p.default is not p.empty and p.name != "self"]
    return tuple(dict.fromkeys(names))


def register_model(builder: Optional[Callable] = None, *, family: Optional[str] = None,
                   reference: str = "", takes: Optional[Callable] = None):
    """`@register_model` or `@register_model(family=..., reference=..., takes=...)`; the
    family defaults to the builder's module (`models/densenet.py` -> densenet)."""
    def register(fn: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
        name = fn.__name__
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[name] = ModelInfo(name, fn, family or fn.__module__.rsplit(".", 1)[-1],
                                  reference, _arguments(fn, takes))
        return fn
    return register(builder) if builder is not None else register


def model_info(name: str) -> ModelInfo:
    get_builder(name)  # the error that lists the known names
    return _MODELS[name]


def list_models() -> List[str]:
    return sorted(_MODELS)


def closest_models(name: str, n: int = 3) -> List[str]:
    return difflib.get_close_matches(str(name), list_models(), n=n, cutoff=0.4)


def get_builder(name: str) -> Callable[..., nn.Layer]:
    if name not in _MODELS:
        close = closest_models(name)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}; {hint}known models: {', '.join(list_models())}"
        )
    return _MODELS[name].builder


def build_model(name: str, **kwargs) -> nn.Layer:
    """Build a registered model. Arguments given as None keep the model's default,
    so an empty yaml key means "whatever the paper used" (as timm's create_model)."""
    builder = get_builder(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return builder(**kwargs)
    except ModelArgumentError:
        raise
    except ValueError as e:  # the architecture's own checks of its arguments
        raise ModelArgumentError(str(e)) from None
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        bad = re.search(r"argument '(\w+)'", str(e))
        raise ModelArgumentError(
            f"model {name!r} does not take the argument {bad.group(1) if bad else str(e)!r}"
        ) from None
