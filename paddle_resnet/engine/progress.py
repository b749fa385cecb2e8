"""Where a run is: the progress a checkpoint resumes from (host numbers only; the epoch's
running sums are device tensors and live in meters.TrainMeter)."""
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

import paddle

from ..errors import UserError

NO_BAD_STEP = 2**62  # FiniteGuard's value while every loss so far was finite


@dataclass
class Progress:
    epoch: int = 0  # epochs finished; the one in progress is `epoch + 1` (`current`)
    batch_index: int = 0  # steps done in the current epoch
    global_step: int = 0
    best_top1: Optional[float] = None
    best_epoch: Optional[int] = None
    elapsed: float = 0.0  # seconds of training and evaluation, across resumes
    evals_done: int = 0

    @property
    def current(self) -> int:
        """The epoch in progress, counted from 1 as the logs count it."""
        return self.epoch + 1

    @property
    def position(self) -> str:
        """Where a stop happened, as its message says it."""
        return f"epoch {self.current}, iteration {self.batch_index}"

    def stored(self, train_sums: Dict[str, paddle.Tensor]) -> Dict[str, Any]:
        """A checkpoint's `progress` entry (format 1: these keys and `train_sums`)."""
        return dict(asdict(self), train_sums=train_sums)

    @classmethod
    def from_stored(cls, stored: Dict[str, Any]) -> "Progress":
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the run stops without saving the broken weights."""


class FiniteGuard:
    """Remembers the first step whose loss was NaN or infinite, on the device: no host
    sync per step; `first_bad_step` reads it back when a line is logged."""

    def __init__(self):
        self._first = paddle.full([], NO_BAD_STEP, "int64")

    def track(self, loss: paddle.Tensor, step: int) -> None:
        bad_here = paddle.where(paddle.isfinite(loss), paddle.full([], NO_BAD_STEP, "int64"),
                                paddle.full([], step, "int64"))
        self._first = paddle.minimum(self._first, bad_here)

    def first_bad_step(self, reduce_min) -> Optional[int]:
        step = int(reduce_min(self._first))
        return None if step == NO_BAD_STEP else step

    def failure(self, reduce_min, steps_per_epoch: int, latest: str) -> Optional[str]:
        """The message a run stops with if any process saw a non-finite loss, else None."""
        step = self.first_bad_step(reduce_min)
        if step is None:
            return None
        return non_finite_message(step, steps_per_epoch, latest, os.path.exists(latest))


def non_finite_message(step: int, steps_per_epoch: int, latest: str, kept: bool) -> str:
    return (f"the loss became non-finite at step {step} (epoch {(step - 1) // steps_per_epoch + 1}"
            f", iteration {(step - 1) % steps_per_epoch + 1}); "
            + (f"the last good checkpoint {latest} is kept" if kept
               else "no checkpoint was written")
            + "; lower optimizer.lr, add schedule.warmup_epochs or set train.grad_clip")
