"""Entry points for `paddle.hub`: every model of the zoo by name, e.g.

    model = paddle.hub.load("path/to/paddle_resnet", "resnet20", source="local",
                            pretrained=True)

`pretrained=True` gives the weights shipped in pretrained/ (`paddle_resnet.list_pretrained()`),
a path the weights of that checkpoint; other keyword arguments go to the model's builder.
"""
from paddle_resnet.api import create_model, list_models

dependencies = ["paddle", "numpy", "yaml"]


def _entry(name):
    def load(pretrained=False, **kwargs):
        return create_model(name, pretrained=pretrained, **kwargs)
    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"{name} from paddle_resnet's zoo (docs/models.md)."
    return load


for _name in list_models():
    globals()[_name] = _entry(_name)
