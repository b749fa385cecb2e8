"""The inference runtime: a model's static program saved with `paddle.jit.save`, and a
Paddle Inference predictor over it on the CPU, with oneDNN kernels, a thread count and a
precision (float32, or bfloat16 on CPUs with AVX-512 BF16). Evaluation (each epoch and
`tools/eval.py`), `tools/export.py` and `tools/predict.py` all run models through it; it
imports nothing else of the package but its errors.
"""
import json
import os
import warnings

import numpy as np

from .cpu import usable_cores
from .errors import ConfigError, UserError
from .schema import SCHEMA

PREFIX = "model"
META_FILE = "export.json"  # written by export.py beside the program
PRECISIONS = SCHEMA["eval.precision"].choices


def save_program(model, out_dir: str) -> None:
    """`paddle.jit.save` of `model` as it is in eval mode (BN on running statistics),
    taking any batch size; a model that was training is left training."""
    import paddle
    from paddle.static import InputSpec
    was_training = model.training
    model.eval()
    try:
        os.makedirs(out_dir, exist_ok=True)
        with warnings.catch_warnings():
            # A model trained under speed.to_static was traced without names, which
            # Paddle warns about; the saved program takes this spec all the same.
            warnings.filterwarnings("ignore", message="The tensor `image` does not exist")
            paddle.jit.save(model, os.path.join(out_dir, PREFIX),
                            input_spec=[InputSpec([None, 3, 32, 32], "float32", "image")])
    except OSError as e:
        raise UserError(f"cannot write the exported model to {out_dir}: "
                        f"{e.strerror or e}") from None
    finally:
        model.train() if was_training else model.eval()  # Paddle < 3.3: train() takes no mode


def cpu_threads(requested: int, processes: int = 1) -> int:
    """0 means the machine's cores shared among the processes on it."""
    return requested or max(1, usable_cores() // processes)


class Predictor:
    """A Paddle Inference predictor over a saved program: on the CPU with oneDNN kernels,
    which evaluated 3.7x (one thread) to 8.6x (two) as fast as dygraph here, with the
    same predictions (docs/performance.md). `precision="bfloat16"` runs oneDNN's bf16
    kernels (float32 in and out); it needs oneDNN and a CPU with AVX-512."""

    def __init__(self, model_dir: str, threads: int = 1, onednn: bool = True,
                 precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ConfigError(f"eval.precision = {precision!r}; expected one of "
                              f"{', '.join(PRECISIONS)}")
        if precision == "bfloat16" and not onednn:
            raise ConfigError("eval.precision = bfloat16 runs on oneDNN, which this model "
                              "cannot use (channels-last); set eval.precision=float32")
        from paddle import inference
        program = next((os.path.join(model_dir, PREFIX + suffix) for suffix in
                        (".json", ".pdmodel")
                        if os.path.isfile(os.path.join(model_dir, PREFIX + suffix))), None)
        if program is None:
            raise UserError(f"{model_dir} is not an exported model (no {PREFIX}.json); "
                            "create one with tools/export.py")
        config = inference.Config(program, os.path.join(model_dir, PREFIX + ".pdiparams"))
        config.disable_gpu()
        if onednn:
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()
        if precision == "bfloat16":
            from paddle.base import core
            if not core.supports_bfloat16():
                raise ConfigError("eval.precision = bfloat16 needs a CPU with AVX-512 (oneDNN "
                                  "bf16 kernels); set eval.precision=float32")
            config.enable_mkldnn_bfloat16()
        config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.input.reshape(batch.shape)
        self.input.copy_from_cpu(np.ascontiguousarray(batch, dtype=np.float32))
        self.predictor.run()
        return self.output.copy_to_cpu()


class InferenceModel(Predictor):
    """A directory written by `tools/export.py`: the predictor and its `export.json`."""

    def __init__(self, model_dir: str, threads: int = 1, onednn: bool = True,
                 precision: str = "float32"):
        meta_path = os.path.join(model_dir, META_FILE)
        if not os.path.isfile(meta_path):
            raise UserError(f"{model_dir} is not an exported model (no {META_FILE}); "
                            "create one with tools/export.py")
        super().__init__(model_dir, threads, onednn, precision)
        with open(meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
