"""Parameter and FLOP counts.

FLOPs here are multiply-accumulates of the convolution and linear layers for one image,
the convention of He et al. (ResNet-20 ~41M) and most CIFAR tables; BN, ReLU, pooling and
additions are left out, as there.
"""
from typing import Dict, List

import paddle
import paddle.nn as nn

from .registry import CONFIG_ARGUMENTS, build_model, list_models, model_info
from .layers import batch_shape

# Families first in this order in the tables (docs/models.md); others after, by name.
FAMILY_ORDER = ("resnet", "plain", "densenet", "simple")


def _family_rank(family: str):
    return (FAMILY_ORDER.index(family), "") if family in FAMILY_ORDER else (len(FAMILY_ORDER),
                                                                           family)


def count_parameters(model: nn.Layer) -> int:
    """Trainable parameters only; Paddle's parameters() also holds BN running statistics."""
    return sum(int(p.numel()) for p in model.parameters() if not p.stop_gradient)


def count_flops(model: nn.Layer, image_size: int = 32) -> int:
    total = [0]

    def conv_hook(layer, inputs, output):
        kernel_h, kernel_w = layer._kernel_size
        per_output = (layer._in_channels // layer._groups) * kernel_h * kernel_w
        total[0] += int(output.numel()) * per_output

    def linear_hook(layer, inputs, output):
        total[0] += int(output.numel()) * layer.weight.shape[0]

    hooks = []
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            hooks.append(layer.register_forward_post_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            hooks.append(layer.register_forward_post_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(batch_shape(1, getattr(model, "input_format", "NCHW"),
                                           image_size)))
    finally:
        for hook in hooks:
            hook.remove()
        model.train() if was_training else model.eval()  # Paddle < 3.3: train() takes no mode
    return total[0]


def summarize(names: List[str] = None, num_classes: int = 10) -> List[Dict]:
    rows = []
    for name in names or list_models():
        info = model_info(name)
        if "depth" in info.arguments:
            continue  # a family of any depth (cifar_resnet); its named depths are listed
        model = build_model(name, num_classes=num_classes)
        rows.append({"model": name, "family": info.family, "params": count_parameters(model),
                     "flops": count_flops(model), "paper": info.reference,
                     "kwargs": [a for a in info.arguments if a not in CONFIG_ARGUMENTS]})
    return sorted(rows, key=lambda r: (_family_rank(r["family"]), r["params"]))


def format_table(rows: List[Dict]) -> str:
    lines = ["| model | parameters | FLOPs (MACs, 32x32) | reference | `model.kwargs` |",
             "|---|---:|---:|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['params']:,} | {row['flops'] / 1e6:,.1f}M "
                     f"| {row['paper']} | {', '.join(row['kwargs']) or '–'} |")
    return "\n".join(lines)
