"""How evaluation runs the model: eager (dygraph), or the model's static program under
Paddle Inference with oneDNN kernels, which on this project's CPU evaluates ResNets
several times as fast with the same predictions (docs/performance.md)."""
import contextlib
import tempfile
import time
from typing import Callable

import paddle

from ..errors import ConfigError
from ..inference import Predictor, cpu_threads, save_program
from ..schema import SCHEMA
from ..speed.threads import use_threads
from .evaluator import evaluate

TTA = SCHEMA["eval.tta"].choices


def resolve_engine(engine: str, place: str, precision: str = "float32") -> str:
    """`auto` is Paddle Inference on the CPU and dygraph on GPUs (where AMP applies)."""
    if engine == "auto":
        engine = "inference" if place == "cpu" else "dygraph"
    if engine == "inference" and place != "cpu":
        raise ConfigError(f"eval.engine = inference runs on the CPU only, but the device is "
                          f"{place}; use eval.engine=auto or dygraph")
    if engine == "dygraph" and precision != "float32":
        raise ConfigError(f"eval.precision = {precision} is for eval.engine=inference (the "
                          f"CPU), but evaluation runs in dygraph on {place}; set "
                          "eval.precision=float32 (speed.amp sets a GPU's precision)")
    return engine


def nchw_twin(model: paddle.nn.Layer, cfg) -> paddle.nn.Layer:
    """A new plain model of `cfg` in NCHW with `model`'s weights and statistics: what
    Paddle Inference runs best, and what `paddle.jit.save` may trace in place of the
    training model. Paddle 3.0's jit.save leaves the layers it traced converted, so a
    training model saved itself, with a speed path's PyLayer inside, failed on its next
    training step ("please use PyLayer instead of static_pylayer in dygraph mode")."""
    from ..models import build_model
    twin = build_model(cfg["model.name"], **dict(cfg.model_kwargs(), data_format="NCHW"))
    twin.set_state_dict(model.state_dict())
    return twin


def with_mirror(forward: Callable, layout: str) -> Callable:
    """Flip test-time augmentation: the mean of the logits of each image and of its
    horizontal mirror, the one view training's `standard` augmentation also shows. Logits
    rather than probabilities: on the shipped ResNet-20s they are as good or better
    (92.35% against 92.31%, 93.05% against 92.96%), and the loss stays a cross-entropy."""
    width = layout.index("W")

    def forward_both(images):
        return (forward(images) + forward(paddle.flip(images, axis=[width]))) / 2
    return forward_both


def shifted(images: paddle.Tensor, layout: str, dy: int, dx: int) -> paddle.Tensor:
    """`images` moved so that out[y, x] = images[y + dy, x + dx]; the pixels that come in
    from outside are 0, the dataset's mean colour once standardised."""
    pad = [max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0)]  # left, right, top, bottom
    padded = paddle.nn.functional.pad(images, pad, value=0.0, data_format=layout)
    h, w = layout.index("H"), layout.index("W")
    top, left = max(dy, 0), max(dx, 0)
    return paddle.slice(padded, axes=[h, w], starts=[top, left],
                        ends=[top + images.shape[h], left + images.shape[w]])


# One-pixel moves along a diagonal, which the standard augmentation's crops show in
# training: on a 24-epoch ResNet-20 the pair scored 91.58% against all eight moves' 91.64%
# at a third of their work, and two-pixel moves 91.35% (benchmarks/tta_views.py; the gain
# over two views varies, +0.12 points on average over seven runs: docs/results.md).
SHIFTS = ((0, 0), (-1, -1), (1, 1))


def with_shifted_mirrors(forward: Callable, layout: str) -> Callable:
    """Each image and its mirror (with_mirror), each as it is and moved one pixel up-left
    and down-right: six views, their logits averaged (after the mirror-and-translate
    evaluation of arXiv:2404.00498)."""
    both = with_mirror(forward, layout)

    def forward_shifted(images):
        return sum(both(shifted(images, layout, dy, dx)) for dy, dx in SHIFTS) / len(SHIFTS)
    return forward_shifted


# eval.tta -> (what it makes of a forward, its views in words for a tool's output).
VIEWS = {"none": (lambda forward, layout: forward, "one view per image"),
         "flip": (with_mirror, "each image and its mirror, logits averaged"),
         "flip_shift": (with_shifted_mirrors, "each image and its mirror, as they are and "
                        "moved one pixel up-left and down-right, logits averaged")}


def views_of(tta: str) -> Callable[[Callable, str], Callable]:
    """What eval.tta `tta` makes of a forward (batches in a layout to logits), checked
    once, before any work."""
    if tta not in TTA:
        raise ConfigError(f"eval.tta = {tta!r}; expected one of {', '.join(TTA)}")
    return VIEWS[tta][0]


@contextlib.contextmanager
def eval_forward(model: paddle.nn.Layer, engine: str, place: str, threads: int = 1,
                 precision: str = "float32", nchw_twin=None, tta: str = "none"):
    """A callable from an image batch to logits that evaluates `model` as it is now.
    Under Paddle Inference the batches are NCHW, and `nchw_twin()` (if given) returns an
    NCHW model with `model`'s weights, which is the one exported; in dygraph they are in
    the model's own layout. `tta` is eval.tta."""
    views = views_of(tta)
    if resolve_engine(engine, place, precision) == "dygraph":
        yield views(model, getattr(model, "data_format", "NCHW"))
        return
    if nchw_twin is not None:
        model = nchw_twin()
    with tempfile.TemporaryDirectory(prefix="paddle_resnet_eval_") as work:
        save_program(model, work)
        # Paddle Inference's oneDNN passes mishandle NHWC convolutions (a channel-count
        # error, Paddle 3.3.1); a channels-last model runs on the plain CPU kernels.
        onednn = getattr(model, "data_format", "NCHW") == "NCHW"
        predictor = Predictor(work, threads=threads, onednn=onednn, precision=precision)
        yield views(lambda images: paddle.to_tensor(predictor(images.numpy())), "NCHW")


def evaluate_epoch(parts, cfg, procs, reduce, progress=None) -> dict:
    """A training run's evaluation of its model as it is now (`parts`: build.py's
    TrainingParts): the `<split>_loss/top1/top5` and `eval_seconds` of its epoch record."""
    name, start = parts.eval_name, time.perf_counter()
    with eval_forward(parts.model, cfg["eval.engine"], parts.place,
                      cpu_threads(cfg["eval.threads"], procs.world), cfg["eval.precision"],
                      lambda: nchw_twin(parts.model, cfg), cfg["eval.tta"]) as forward, \
            parts.amp.autocast():
        result = evaluate(parts.model, parts.eval_loader, cfg["model.num_classes"],
                          reduce=reduce, forward=forward, progress=progress)
    if parts.speed.threads:
        # Paddle Inference leaves the process at one OpenMP thread after its predictor ran,
        # whatever it was given (Paddle 3.3.1, measured): a process with several threads
        # would train on after its first evaluation with one for Paddle's kernels, and
        # oneDNN would make its next primitives for one.
        use_threads(parts.speed.threads)
    return {f"{name}_loss": result["loss"], f"{name}_top1": result["top1"],
            f"{name}_top5": result["top5"], "eval_seconds": time.perf_counter() - start}
