"""The training step: forward, loss, backward and the optimiser's update. The loop, the
benchmarks and the test helpers all call this one function, so what they time and check
is what training runs."""
from typing import Callable, Optional, Sequence, Tuple

import paddle

from ..device import MixedPrecision
from .losses import label_smoothed_cross_entropy

FULL_PRECISION = MixedPrecision("off", "float16", 1.0, "cpu")  # `amp` when none is given


def train_step(model: paddle.nn.Layer, images: paddle.Tensor, labels: paddle.Tensor,
               optimizer, amp: Optional[MixedPrecision] = None, label_smoothing: float = 0.0,
               inspect: Optional[Callable[[], None]] = None,
               average_gradients: Optional[Callable[[], None]] = None
               ) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """One update of `model` on a batch; returns (loss, logits). `average_gradients`
    (device.data_parallel's) runs between backward and the update; `inspect` after the
    update while the gradients are still there (gradient norms, histograms); then they are
    cleared."""
    amp = amp or FULL_PRECISION
    with amp.autocast():
        logits = model(images)
        loss = label_smoothed_cross_entropy(logits, labels, label_smoothing)
    amp.backward_and_step(loss, optimizer, average_gradients)
    if inspect is not None:
        inspect()
    optimizer.clear_grad()
    return loss, logits


def training_model(name: str, plan, input_format: Optional[str] = None, **model_kwargs):
    """Model `name` as training builds it for a speed plan (speed.plan_speed): in the
    plan's layout, fed batches in `input_format` (default: the same), speed paths applied;
    `model.speed_paths` counts the layers each path took (speed.apply_speed)."""
    from ..models import build_model
    from ..speed import apply_speed
    model = build_model(name, **dict(model_kwargs, data_format=plan.data_format))
    model.input_format = input_format or plan.data_format
    model.speed_paths = apply_speed(model, plan)
    return model


def speed_options(overrides: Sequence[str] = ()):
    """The config's `speed.*` options with `KEY=VALUE` overrides (`conv=paddle`), validated
    as a config is, for code that plans speed paths without a config file."""
    from ..config import load_config
    return load_config(overrides=[f"speed.{text}" for text in overrides])
