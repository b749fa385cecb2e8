"""The model zoo: `build_model("resnet56")`, `list_models()`.

Every module of this package is imported here, so a model registers by living in a new
file with `@register_model` on its builder (docs/models.md, "Adding a model")."""
import importlib
import pkgutil

from .densenet import DenseNet
from .registry import (ModelArgumentError, ModelInfo, UnknownModelError, build_model,
                       list_models, model_info, register_model)
from .resnet import (BasicBlock, Bottleneck, ProjectionShortcut, ResNet, ShortcutA,
                     cifar_resnet, make_layer)
from .simple_cnn import SimpleCNN
from .summary import count_flops, count_parameters

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BasicBlock", "Bottleneck", "DenseNet", "ModelArgumentError", "ModelInfo",
    "ProjectionShortcut", "ResNet", "ShortcutA", "SimpleCNN", "UnknownModelError",
    "build_model", "cifar_resnet", "count_flops", "count_parameters", "list_models",
    "make_layer", "model_info", "register_model",
]
