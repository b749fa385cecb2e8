"""paddle_resnet: residual networks on CIFAR, reproduced with PaddlePaddle.

    import paddle_resnet as pr
    model = pr.create_model("resnet20", pretrained=True)
    result = pr.predict(model, ["cat.png"])          # classes and probabilities

Importing the package loads nothing of Paddle and changes nothing in the process (no
environment variables, no warning filters): the names below load on first use, and what a
run needs is set where it starts (`paddle_resnet/runtime.py`).
"""
import importlib

__version__ = "0.1.0"

# name -> the module that defines it, imported on first access (PEP 562), so that the
# command-line tools can report a mistyped config key before Paddle's 3 s import.
_PUBLIC = {
    "create_model": "api", "list_models": "api", "list_pretrained": "api",
    "load_config": "api", "train": "api", "evaluate": "api", "predict": "api",
    "Prediction": "api",
    "CIFAR10_CLASSES": "data.cifar", "MEAN_STD": "data.cifar",
}
__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
