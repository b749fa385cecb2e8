"""Timers and the ETA, in the manner of pycls's meters."""
from typing import Optional


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "--:--:--"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


class Timer:
    """Accumulates measured durations; `average` per measurement."""

    def __init__(self):
        self.total = 0.0
        self.count = 0

    def add(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1

    @property
    def average(self) -> Optional[float]:
        return self.total / self.count if self.count else None


class RunClock:
    """Remaining time for the epoch and the whole run, from measured averages.

    The run estimate counts the evaluations still to come at their measured average
    duration (before the first one, at a third of the training time per image: a forward
    pass is roughly a third of forward + backward).
    """

    # Steps after (re)start whose time is not averaged: the first steps pay for memory
    # allocation and kernel selection.
    WARMUP_STEPS = 2

    def __init__(self, steps_per_epoch: int, total_epochs: int, eval_images_per_run: int,
                 evals_total: int, train_images_per_step: int):
        self.steps_per_epoch = steps_per_epoch
        self.total_epochs = total_epochs
        self.eval_images = eval_images_per_run
        self.evals_total = evals_total
        self.images_per_step = train_images_per_step
        self.warmup_timer = Timer()
        self.step_timer = Timer()
        self.eval_timer = Timer()
        self._last_step: Optional[float] = None

    def record_step(self, seconds: float):
        warming_up = self.warmup_timer.count < self.WARMUP_STEPS
        timer = self.warmup_timer if warming_up else self.step_timer
        timer.add(seconds)
        self._last_step = seconds

    def record_eval(self, seconds: float):
        self.eval_timer.add(seconds)

    def steps_timed(self) -> int:
        """Steps timed since the (re)start."""
        return self.warmup_timer.count + self.step_timer.count

    def step_time(self) -> Optional[float]:
        # Until a step past the warm-up is timed, the latest step: the first one also
        # pays for one-time set-up, often several normal steps' worth.
        return self.step_timer.average or (self._last_step if self.warmup_timer.count
                                           else None)

    def eval_time(self) -> Optional[float]:
        if self.eval_timer.count:
            return self.eval_timer.average
        if self.step_time() is not None:
            return self.step_time() / self.images_per_step * self.eval_images / 3
        return None

    def eta_epoch(self, step_in_epoch: int) -> Optional[float]:
        """`step_in_epoch` steps of the current epoch are done."""
        if self.step_time() is None:
            return None
        return (self.steps_per_epoch - step_in_epoch) * self.step_time()

    def eta_run(self, global_step: int, evals_done: int) -> Optional[float]:
        if self.step_time() is None:
            return None
        remaining_steps = self.steps_per_epoch * self.total_epochs - global_step
        remaining_evals = max(0, self.evals_total - evals_done)
        return remaining_steps * self.step_time() + remaining_evals * (self.eval_time() or 0.0)
