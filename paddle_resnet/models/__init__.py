"""The model zoo: `build_model("resnet56")`, `list_models()`."""
from . import densenet, resnet, simple_cnn  # noqa: F401  (registers the builders)
from .densenet import DenseNet
from .registry import UnknownModelError, build_model, list_models, register_model
from .resnet import (BasicBlock, Bottleneck, ProjectionShortcut, ResNet, ShortcutA,
                     cifar_resnet, make_layer)
from .simple_cnn import SimpleCNN
from .summary import count_flops, count_parameters

__all__ = [
    "BasicBlock", "Bottleneck", "DenseNet", "ProjectionShortcut", "ResNet",
    "ShortcutA", "SimpleCNN", "UnknownModelError", "build_model", "cifar_resnet",
    "count_flops", "count_parameters", "list_models", "make_layer", "register_model",
]
