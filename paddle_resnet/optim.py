"""Optimisers and per-iteration learning-rate schedules built from the config."""
import math
from typing import Sequence, Tuple

import paddle
from paddle.optimizer.lr import LRScheduler


class IterationSchedule(LRScheduler):
    """Learning rate as a function of the global iteration, with optional linear warm-up.

    Stepping every iteration (not every epoch) makes the rate a pure function of the step
    count, so a run resumed mid-epoch continues on exactly the same curve. `last_epoch`
    is Paddle's name for the step counter.
    """

    def __init__(self, peak_lr: float, total_steps: int, kind: str = "constant",
                 warmup_steps: int = 0, milestones: Sequence[float] = (0.5, 0.75),
                 gamma: float = 0.1, min_lr: float = 0.0, pct_start: float = 0.3):
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        self.peak_lr = peak_lr
        self.total_steps = max(1, total_steps)
        self.kind = kind
        self.warmup_steps = warmup_steps
        self.milestone_steps = [round(m * self.total_steps) for m in milestones]
        self.gamma = gamma
        self.min_lr = min_lr
        self.pct_start = pct_start
        super().__init__(learning_rate=peak_lr)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        return SCHEDULES[self.kind](self, step)

    def after_warmup(self, step: int) -> Tuple[int, int]:
        """Steps since the warm-up ended, and how many there are (the last step ends it)."""
        return step - self.warmup_steps, max(1, self.total_steps - self.warmup_steps - 1)

    def annealed(self, progress: float) -> float:
        """Cosine from peak_lr down to min_lr as progress goes 0 -> 1."""
        return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def get_lr(self) -> float:
        return self.lr_at(max(0, self.last_epoch))


def _constant(schedule: IterationSchedule, step: int) -> float:
    return schedule.peak_lr


def _multistep(schedule: IterationSchedule, step: int) -> float:
    drops = sum(step >= m for m in schedule.milestone_steps)
    return schedule.peak_lr * schedule.gamma ** drops


def _cosine(schedule: IterationSchedule, step: int) -> float:
    done, span = schedule.after_warmup(step)
    return schedule.annealed(min(1.0, done / span))


def _onecycle(schedule: IterationSchedule, step: int) -> float:
    # Smith & Topin 2017: cosine rise from peak/25 to the peak, then cosine decay (the
    # defaults of torch's OneCycleLR).
    done, span = schedule.after_warmup(step)
    rise = max(1, round(schedule.pct_start * span))
    start = schedule.peak_lr / 25.0
    if done < rise:
        return start + (schedule.peak_lr - start) * 0.5 * (1 - math.cos(math.pi * done / rise))
    return schedule.annealed(min(1.0, (done - rise) / max(1, span - rise)))


# `schedule.name` -> the rate after warm-up; these names are the schema's choices.
SCHEDULES = {"constant": _constant, "multistep": _multistep, "cosine": _cosine,
             "onecycle": _onecycle}


def build_schedule(cfg, steps_per_epoch: int) -> IterationSchedule:
    return IterationSchedule(
        peak_lr=cfg["optimizer.lr"], total_steps=cfg["train.epochs"] * steps_per_epoch,
        kind=cfg["schedule.name"],
        warmup_steps=round(cfg["schedule.warmup_epochs"] * steps_per_epoch),
        milestones=cfg["schedule.milestones"], gamma=cfg["schedule.gamma"],
        min_lr=cfg["schedule.min_lr"], pct_start=cfg["schedule.pct_start"])


def _momentum(cfg, decay, **common):
    return paddle.optimizer.Momentum(momentum=cfg["optimizer.momentum"],
                                     use_nesterov=cfg["optimizer.nesterov"],
                                     weight_decay=decay, **common)


def _adam(cfg, decay, **common):
    beta1, beta2 = cfg["optimizer.betas"]
    return paddle.optimizer.Adam(beta1=beta1, beta2=beta2, weight_decay=decay, **common)


def _adamw(cfg, decay, **common):
    beta1, beta2 = cfg["optimizer.betas"]  # AdamW's decay is decoupled, and 0 when unset
    return paddle.optimizer.AdamW(beta1=beta1, beta2=beta2, weight_decay=decay or 0.0,
                                  **common)


# `optimizer.name` -> builder; these names are the schema's choices. Exact resume needs
# each one's accumulators named `<parameter name>_<what>`, as every Paddle optimizer names
# them (checkpoint.load_optimizer_state checks).
OPTIMIZERS = {"sgd": _momentum, "adam": _adam, "adamw": _adamw}


def build_optimizer(cfg, parameters, schedule: LRScheduler) -> paddle.optimizer.Optimizer:
    clip = cfg["train.grad_clip"]
    return OPTIMIZERS[cfg["optimizer.name"]](
        cfg, cfg["optimizer.weight_decay"] or None, learning_rate=schedule,
        parameters=parameters,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(clip) if clip else None)
