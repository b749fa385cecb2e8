"""Parameter and FLOP counts.

FLOPs here are multiply-accumulates of the convolution and linear layers for one image,
the convention of He et al. (ResNet-20 ~41M) and most CIFAR tables; BN, ReLU, pooling and
additions are left out, as there.
"""
from typing import Dict, List

import paddle
import paddle.nn as nn

from .registry import build_model, list_models
from .resnet import batch_shape

HE = "He et al. 2016 (arXiv:1512.03385)"
HUANG = "Huang et al. 2017 (arXiv:1608.06993)"
# Where each model comes from, for the table in docs/models.md.
REFERENCES = {
    **{f"resnet{d}": f"{HE}, Sec. 4.2, Table 6" for d in (20, 32, 44, 56, 110, 1202)},
    **{f"resnet{d}": f"{HE}, Table 1, with a 3x3 stem and no max-pool"
       for d in (18, 34, 50, 101, 152)},
    "resnet9": "ResNet-18's basic blocks, one per stage at 64/128/256",
    **{f"plain{d}": f"{HE}, plain net of Sec. 4.2, Fig. 6" for d in (20, 32, 44, 56, 110)},
    **{f"plain{d}": f"{HE}, plain net of Table 1 / Fig. 4" for d in (18, 34)},
    "densenet40_k12": f"{HUANG}, Table 2",
    "densenet_bc_100_k12": f"{HUANG}, Table 2",
    "densenet121": f"{HUANG}, Table 1, with a 3x3 stem and no max-pool",
    "simple_cnn": "plain CNN baseline of this package",
}
FAMILIES = ("resnet", "plain", "densenet", "simple")


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
        model.train(was_training)
    return total[0]


def summarize(names: List[str] = None, num_classes: int = 10) -> List[Dict]:
    rows = []
    for name in names or list_models():
        if name in ("cifar_resnet", "cifar_plain"):
            continue  # families of any depth; their named depths are listed
        model = build_model(name, num_classes=num_classes)
        rows.append({"model": name, "params": count_parameters(model),
                     "flops": count_flops(model), "paper": REFERENCES.get(name, "")})
    return sorted(rows, key=lambda r: (
        [r["model"].startswith(f) for f in FAMILIES].index(True), r["params"]))


def format_table(rows: List[Dict]) -> str:
    lines = ["| model | parameters | FLOPs (MACs, 32x32) | reference |",
             "|---|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['params']:,} | {row['flops'] / 1e6:,.1f}M "
                     f"| {row['paper']} |")
    return "\n".join(lines)
