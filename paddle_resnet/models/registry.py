"""A name -> builder registry, so a yaml file can say `model.name: resnet56`."""
import difflib
import re
from typing import Callable, Dict, List

import paddle.nn as nn

_BUILDERS: Dict[str, Callable[..., nn.Layer]] = {}


class ModelArgumentError(ValueError):
    """A model name or architecture argument the zoo cannot build (a user's choice, which
    tools report as a usage error; any other ValueError is a bug and keeps its traceback)."""


class UnknownModelError(ModelArgumentError):
    pass


def register_model(builder: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model name {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def list_models() -> List[str]:
    return sorted(_BUILDERS)


def closest_models(name: str, n: int = 3) -> List[str]:
    return difflib.get_close_matches(str(name), list_models(), n=n, cutoff=0.4)


def get_builder(name: str) -> Callable[..., nn.Layer]:
    if name not in _BUILDERS:
        close = closest_models(name)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}; {hint}known models: {', '.join(list_models())}"
        )
    return _BUILDERS[name]


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
