"""VisualDL logging (on the main process only), in the tags of hapi's VisualDL callback:
`train/...` per logged iteration (step = global iteration), `eval/...` and `time/...` per
epoch (step = epoch), per-stage gradient and weight norms, histograms and hparams.

VisualDL reads one record file per run directory and truncates a file it reopens, so a
resumed run writes a fresh file and first replays the scalars of `metrics.jsonl` (already
cut back to the checkpoint): the curves continue instead of restarting.

No model graph: VisualDL 2.5.3's add_graph reads the `.pdmodel` file of a jit-saved model,
which Paddle 3 no longer writes (its PIR programs are saved as `.json`).
"""
import glob
import os
from typing import Any, Dict, Iterable, Optional

import numpy as np

from ..errors import ConfigError

RECORD_FILE = "vdlrecords.paddle_resnet.log"


def stage_of(parameter_name: str) -> str:
    """`layer2.0.conv1.weight` -> `layer2`; stems and DenseNet blocks get their own name."""
    parts = parameter_name.split(".")
    if parts[0] in ("conv1", "bn1"):
        return "stem"
    if parts[0] == "features" and len(parts) > 1:
        return f"features.{parts[1]}"
    return parts[0]


class VisualDLLog:
    def __init__(self, output_dir: str, enabled: bool):
        self.writer = None
        if not enabled:
            return
        try:
            from visualdl import LogWriter
        except ImportError:
            raise ConfigError("log.visualdl is true but visualdl is not installed; "
                              "pip install visualdl, or set -o log.visualdl=false") from None
        for old in glob.glob(os.path.join(output_dir, "vdlrecords*")):
            os.remove(old)
        self.writer = LogWriter(logdir=output_dir, file_name=RECORD_FILE)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def _scalars(self, prefix: str, values: Dict[str, Any], step: int):
        for name, value in values.items():
            if value is not None:
                self.writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def train_iter(self, record: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        step = record["global_step"]
        self._scalars("train", {k: record.get(k) for k in ("loss", "top1", "lr", "ips")}, step)
        self._scalars("grad_norm", record.get("grad_norms", {}), step)
        self._scalars("weight_norm", record.get("weight_norms", {}), step)

    def epoch(self, record: Dict[str, Any], eval_name: str) -> None:
        if not self.enabled:
            return
        step = record["epoch"]
        self._scalars("eval", {k: record.get(f"{eval_name}_{k}")
                               for k in ("loss", "top1", "top5")}, step)
        self._scalars("time", {"epoch_s": record.get("epoch_seconds")}, step)
        self._scalars("train_epoch", {"loss": record.get("train_loss"),
                                      "top1": record.get("train_top1")}, step)

    def replay(self, records: Iterable[Dict[str, Any]], eval_name: str) -> None:
        for record in records:
            if record.get("kind") == "train_iter":
                self.train_iter(record)
            elif record.get("kind") == "epoch":
                self.epoch(record, eval_name)

    def histograms(self, arrays: Dict[str, np.ndarray], kind: str, epoch: int) -> None:
        if self.enabled:
            for stage, values in arrays.items():
                self.writer.add_histogram(f"{kind}/{stage}", values, epoch, buckets=30)

    def hparams(self, hparams: Dict[str, Any], metrics: Iterable[str]) -> None:
        if self.enabled:
            clean = {k: (v if isinstance(v, (int, float, str)) else str(v))
                     for k, v in hparams.items() if v is not None}
            self.writer.add_hparams(clean, list(metrics))

    def close(self) -> None:
        if self.enabled:
            self.writer.close()


def model_arrays(model, with_grads: bool) -> Dict[str, Dict[str, np.ndarray]]:
    """Weights (and gradients) of every trainable parameter, concatenated per stage."""
    weights: Dict[str, list] = {}
    grads: Dict[str, list] = {}
    for name, p in model.named_parameters():
        if p.stop_gradient:
            continue
        weights.setdefault(stage_of(name), []).append(p.numpy().ravel())
        if with_grads and p.grad is not None:
            grads.setdefault(stage_of(name), []).append(p.grad.numpy().ravel())
    join = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return {"weights": join(weights), "grads": join(grads)}


def stage_norms(model) -> Optional[Dict[str, Any]]:
    """Per-stage L2 norms of gradients and weights, and the parameter whose gradient is
    smallest and largest in each stage (to name the layer in a warning). One host
    read-back for the whole model."""
    import paddle
    names, grads, weights = [], [], []
    for name, p in model.named_parameters():
        if p.stop_gradient or p.grad is None:
            continue
        names.append(name)
        grads.append((p.grad.astype("float32") ** 2).sum())
        weights.append((p.astype("float32") ** 2).sum())
    if not names:
        return None
    squares = paddle.stack([paddle.stack(grads), paddle.stack(weights)]).numpy().astype(np.float64)
    result: Dict[str, Any] = {"grad": {}, "weight": {}, "smallest": {}, "largest": {}}
    for stage in dict.fromkeys(stage_of(n) for n in names):
        index = [i for i, n in enumerate(names) if stage_of(n) == stage]
        result["grad"][stage] = float(np.sqrt(squares[0, index].sum()))
        result["weight"][stage] = float(np.sqrt(squares[1, index].sum()))
        per_parameter = np.sqrt(squares[0, index])
        result["smallest"][stage] = (names[index[int(per_parameter.argmin())]],
                                     float(per_parameter.min()))
        result["largest"][stage] = (names[index[int(per_parameter.argmax())]],
                                    float(per_parameter.max()))
    return result


class StepInspection:
    """train_step's `inspect`: what is read while the gradients are still there, the
    per-stage norms of a logged step and the histograms' arrays of an epoch's last step."""

    def __init__(self, model, norms: bool, arrays: bool):
        self.model, self.want_norms, self.want_arrays = model, norms, arrays
        self.norms: Optional[Dict[str, Any]] = None
        self.arrays: Optional[Dict[str, Dict[str, np.ndarray]]] = None

    def __call__(self) -> None:
        if self.want_norms:
            self.norms = stage_norms(self.model)
        if self.want_arrays:
            self.arrays = model_arrays(self.model, with_grads=True)


def gradient_warnings(norms: Dict[str, Any], step: int, low: float, high: float):
    """`warning` records for stages whose gradient norm is below `low` (vanishing) or
    above `high` (exploding), naming the layer with the smallest or largest one."""
    for stage, norm in norms["grad"].items():
        if norm < low:
            which, problem = "smallest", f"vanishing: {norm:.2e} < log.grad_vanish_below = {low:g}"
        elif norm > high:
            which, problem = "largest", f"exploding: {norm:.2e} > log.grad_explode_above = {high:g}"
        else:
            continue
        layer, value = norms[which][stage]
        message = (f"warning: step {step}: gradient norm of {stage} is {problem}; "
                   f"{which} in {layer} ({value:.2e})")
        yield {"kind": "warning", "global_step": step, "stage": stage, "layer": layer,
               "grad_norm": norm, "message": message}
