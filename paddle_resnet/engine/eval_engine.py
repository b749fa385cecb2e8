"""How evaluation runs the model: eager (dygraph), or the model's static program under
Paddle Inference with oneDNN kernels, which on this project's CPU evaluates ResNets
several times as fast with the same predictions (docs/performance.md)."""
import contextlib
import os
import tempfile

import paddle

from ..errors import ConfigError
from ..export import Predictor, save_program


def resolve_engine(engine: str, place: str) -> str:
    """`auto` is Paddle Inference on the CPU and dygraph on GPUs (where AMP applies)."""
    if engine == "auto":
        return "inference" if place == "cpu" else "dygraph"
    if engine == "inference" and place != "cpu":
        raise ConfigError(f"eval.engine = inference runs on the CPU only, but the device is "
                          f"{place}; use eval.engine=auto or dygraph")
    return engine


def cpu_threads(requested: int, processes: int = 1) -> int:
    """0 means the machine's cores shared among the processes on it."""
    return requested or max(1, (os.cpu_count() or 1) // processes)


@contextlib.contextmanager
def eval_forward(model: paddle.nn.Layer, engine: str, place: str, threads: int = 1):
    """A callable from an image batch to logits that evaluates `model` as it is now."""
    if resolve_engine(engine, place) == "dygraph":
        yield model
        return
    with tempfile.TemporaryDirectory(prefix="paddle_resnet_eval_") as work:
        save_program(model, work)
        # Paddle Inference's oneDNN passes mishandle NHWC convolutions (a channel-count
        # error, Paddle 3.3.1); a channels-last model runs on the plain CPU kernels.
        onednn = getattr(model, "data_format", "NCHW") == "NCHW"
        predictor = Predictor(work, threads=threads, onednn=onednn)
        yield lambda images: paddle.to_tensor(predictor(images.numpy()))
