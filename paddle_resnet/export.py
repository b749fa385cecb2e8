"""Export for Paddle Inference (`tools/export.py`) and the predictor that loads it back.

`paddle.jit.save` writes the static program (`model.json`, Paddle 3's PIR format) and
the weights (`model.pdiparams`); `export.json` beside them holds what a user of the model
needs to feed it: the class names and the input normalisation.
"""
import json
import os
import warnings
from typing import Dict, List, Optional

import numpy as np

from .config import load_config
from .data import CIFAR10_CLASSES, MEAN_STD
from .device import use_device
from .engine import checkpoint as ckpt
from .errors import UserError
from .models import build_model

PREFIX = "model"
META_FILE = "export.json"


def class_names(dataset: str, num_classes: int) -> List[str]:
    if dataset == "cifar10":
        return list(CIFAR10_CLASSES)
    return [str(i) for i in range(num_classes)]


def load_trained_model(weights: str, config_path: Optional[str] = None, overrides=()):
    """(model in eval mode on the config's device, config, checkpoint progress, device)."""
    state = ckpt.load_checkpoint(weights)
    cfg = load_config(config_path, overrides, base=None if config_path else state.get("config"))
    place = use_device(cfg["device"])
    model = build_model(cfg["model.name"], **cfg.model_kwargs())
    ckpt.load_model_state(model, state["model"], weights)
    model.eval()
    return model, cfg, state.get("progress", {}), place


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
        model.train(was_training)


def export_model(weights: str, out_dir: str, config_path: Optional[str] = None,
                 softmax: bool = False) -> Dict:
    import paddle
    # Exported programs compute in NCHW whatever the training layout (the weights are the
    # same): it is the layout every Paddle Inference backend, oneDNN included, handles.
    model, cfg, progress, _ = load_trained_model(weights, config_path,
                                                 ["speed.channels_last=false"])
    if softmax:
        model = paddle.nn.Sequential(model, paddle.nn.Softmax(axis=1))
    save_program(model, out_dir)
    mean, std = MEAN_STD[cfg["data.dataset"]]
    meta = {"model": cfg["model.name"], "dataset": cfg["data.dataset"],
            "classes": class_names(cfg["data.dataset"], cfg["model.num_classes"]),
            "input": "float32 N x 3 x 32 x 32, RGB scaled to [0, 1], minus mean, over std",
            "mean": list(mean), "std": list(std), "output": "softmax" if softmax else "logits",
            "checkpoint": os.path.abspath(weights), "epoch": progress.get("epoch")}
    with open(os.path.join(out_dir, META_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return meta


class Predictor:
    """A Paddle Inference predictor over a saved program: on the CPU with oneDNN kernels,
    which evaluated 3.7x (one thread) to 8.6x (two) as fast as dygraph here, with the
    same predictions (docs/performance.md)."""

    def __init__(self, model_dir: str, threads: int = 1, onednn: bool = True):
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

    def __init__(self, model_dir: str, threads: int = 1, onednn: bool = True):
        meta_path = os.path.join(model_dir, META_FILE)
        if not os.path.isfile(meta_path):
            raise UserError(f"{model_dir} is not an exported model (no {META_FILE}); "
                            "create one with tools/export.py")
        super().__init__(model_dir, threads, onednn)
        with open(meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
