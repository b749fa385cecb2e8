"""`tools/export.py`: a checkpoint exported for Paddle Inference, and for ONNX runtimes.

`paddle.jit.save` writes the static program (`model.json`, Paddle 3's PIR format) and
the weights (`model.pdiparams`); `export.json` beside them holds what a user of the model
needs to feed it: the class names and the input normalisation. `inference.py` loads it
back (`InferenceModel`). `--format onnx` converts that program with paddle2onnx (the
`[onnx]` extra) into `model.onnx`, input `image` [N, 3, 32, 32] float32.
"""
import json
import os
from typing import Dict, Optional, Sequence

from .errors import UserError

from .checkpoint import load_trained_model
from .data import MEAN_STD, class_names
from .engine.eval_batch import eval_batch_size
from .inference import META_FILE, PREFIX, save_program


FORMATS = ("paddle", "onnx")
ONNX_FILE = "model.onnx"
# Opset 13 (2020) is read by every current ONNX runtime and has every operator ResNets use.
ONNX_OPSET = 13


def export_model(weights: str, out_dir: str, config_path: Optional[str] = None,
                 softmax: bool = False, overrides: Sequence[str] = (),
                 fmt: str = "paddle") -> Dict:
    import paddle
    if fmt not in FORMATS:
        raise UserError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    converter = _onnx_converter() if fmt == "onnx" else None  # before anything is written
    # Exported programs compute in NCHW whatever the training layout (the weights are the
    # same): it is the layout every Paddle Inference backend, oneDNN included, handles.
    model, cfg, progress, _ = load_trained_model(weights, config_path,
                                                 [*overrides, "speed.channels_last=false"])
    # tools/predict.py's images per forward on a CPU, chosen here where the layers are
    # still there to measure (engine/eval_batch.py); the exported program has none.
    cpu_batch = eval_batch_size(0, 1, "cpu", model)
    if softmax:
        model = paddle.nn.Sequential(model, paddle.nn.Softmax(axis=1))
    save_program(model, out_dir)
    mean, std = MEAN_STD[cfg["data.dataset"]]
    meta = {"model": cfg["model.name"], "dataset": cfg["data.dataset"],
            "classes": class_names(cfg["data.dataset"], cfg["model.num_classes"]),
            "input": "float32 N x 3 x 32 x 32, RGB scaled to [0, 1], minus mean, over std",
            "mean": list(mean), "std": list(std), "output": "softmax" if softmax else "logits",
            "checkpoint": os.path.abspath(weights), "epoch": progress.get("epoch"),
            "cpu_batch": cpu_batch}
    if converter is not None:
        to_onnx(converter, out_dir)
        meta["onnx"] = ONNX_FILE
    with open(os.path.join(out_dir, META_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return meta


def _onnx_converter():
    try:
        import paddle2onnx
    except ImportError:
        raise UserError("--format onnx needs paddle2onnx: pip install -e \".[onnx]\" (or "
                        "pip install paddle2onnx onnxruntime)") from None
    return paddle2onnx


def to_onnx(paddle2onnx, out_dir: str) -> str:
    """The exported Paddle program in `out_dir` as `model.onnx` beside it."""
    path = os.path.join(out_dir, ONNX_FILE)
    # optimize_tool="None": paddle2onnx's optional optimiser (polygraphy) is another
    # dependency, and onnxruntime optimises the graph itself when it loads it.
    program, params = (os.path.join(out_dir, PREFIX + suffix) for suffix in (".json", ".pdiparams"))
    paddle2onnx.export(program, params,
                       save_file=path, opset_version=ONNX_OPSET, enable_onnx_checker=True,
                       optimize_tool="None")
    return path
