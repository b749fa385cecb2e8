"""Evaluation: loss, top-1, top-5 and the confusion matrix over a loader."""
from typing import Callable, Dict, Optional

import numpy as np
import paddle
import paddle.nn.functional as F

from .meters import top_k_hits


@paddle.no_grad()
def evaluate(model: paddle.nn.Layer, loader, num_classes: int,
             with_confusion: bool = False, reduce=None, forward=None,
             progress: Optional[Callable[[int, int], None]] = None) -> Dict:
    """`reduce` sums a tensor over processes, so that every process reports the metrics
    of the whole evaluation set when each evaluated its share. `forward` (default: the
    model itself) maps a batch to logits, e.g. through Paddle Inference. `progress` is
    called with (batches done, batches) after each batch."""
    forward = forward or model
    was_training = model.training
    model.eval()
    loss_sum = paddle.zeros([], dtype="float64")
    top1 = paddle.zeros([], dtype="int64")
    top5 = paddle.zeros([], dtype="int64")
    predictions = []
    count = 0
    try:
        for done, (images, labels) in enumerate(loader.epoch(0), 1):
            if progress is not None:
                progress(done, len(loader))
            if labels.shape[0] == 0:
                continue  # this process's share of a final batch smaller than the world
            logits = forward(images)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").astype("float64")
            hits1, hits5 = top_k_hits(logits, labels)
            top1 += hits1
            top5 += hits5
            count += labels.shape[0]
            if with_confusion:
                predictions.append(paddle.topk(logits, 1, axis=1)[1][:, 0])
    finally:
        model.train() if was_training else model.eval()  # Paddle < 3.3: train() takes no mode
    if reduce is not None:
        loss_sum, top1, top5 = reduce(loss_sum), reduce(top1), reduce(top5)
        count = int(reduce(paddle.to_tensor(count, dtype="int64")))
    result = {"loss": float(loss_sum) / count, "top1": 100.0 * int(top1) / count,
              "top5": 100.0 * int(top5) / count, "samples": count}
    if with_confusion:
        predicted = paddle.concat(predictions).numpy()
        truth = loader.split.labels[:count]
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(confusion, (truth, predicted), 1)
        result["confusion"] = confusion
        with np.errstate(invalid="ignore"):
            result["per_class_top1"] = 100.0 * np.diag(confusion) / confusion.sum(axis=1)
    return result
