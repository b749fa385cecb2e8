"""`tools/export.py`: a checkpoint exported for Paddle Inference.

`paddle.jit.save` writes the static program (`model.json`, Paddle 3's PIR format) and
the weights (`model.pdiparams`); `export.json` beside them holds what a user of the model
needs to feed it: the class names and the input normalisation. `inference.py` loads it
back (`InferenceModel`).
"""
import json
import os
from typing import Dict, Optional

from .checkpoint import load_trained_model
from .data import MEAN_STD, class_names
from .inference import META_FILE, save_program


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
