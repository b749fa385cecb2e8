"""Timers, the ETA, the training meter and the lines a run prints, in the manner of
pycls's meters."""
from typing import Any, Callable, Dict, Optional, Tuple

import paddle

from ..console import format_duration

STATUS_SECONDS = 1.0  # how often the live status line is refreshed


class Ticker:
    """`due(now)` is true at most once every `seconds` (and at once after `reset`)."""

    def __init__(self, seconds: float):
        self.seconds, self._next = seconds, 0.0

    def reset(self) -> None:
        self._next = 0.0

    def __call__(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True


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


class TrainMeter:
    """An epoch's training loss, top-1 and top-5 as running sums on the device: read back
    only when a line is logged, so a step costs no host sync."""

    def __init__(self, sums: Optional[Dict[str, paddle.Tensor]] = None):
        self.sums = sums if sums is not None else self.zero()

    @staticmethod
    def zero() -> Dict[str, paddle.Tensor]:
        return {"loss": paddle.zeros([], "float64"), "top1": paddle.zeros([], "int64"),
                "top5": paddle.zeros([], "int64"), "samples": paddle.zeros([], "int64")}

    @paddle.no_grad()
    def add(self, loss: paddle.Tensor, logits: paddle.Tensor, labels: paddle.Tensor) -> None:
        batch = labels.shape[0]
        top1, top5 = top_k_hits(logits, labels)
        self.sums["loss"] += loss.detach().astype("float64") * batch
        self.sums["top1"] += top1
        self.sums["top5"] += top5
        self.sums["samples"] += batch

    def averages(self, reduce: Callable[[paddle.Tensor], paddle.Tensor]) -> Dict[str, float]:
        """Loss and top-1/top-5 (%) over every process's images so far (`reduce` sums)."""
        sums = {k: reduce(v) for k, v in self.sums.items()}
        samples = int(sums["samples"])
        return {"loss": float(sums["loss"]) / samples,
                "top1": 100.0 * int(sums["top1"]) / samples,
                "top5": 100.0 * int(sums["top5"]) / samples}


def top_k_hits(logits: paddle.Tensor, labels: paddle.Tensor) -> Tuple[paddle.Tensor, ...]:
    """(top-1, top-5) correct counts of a batch as int64 tensors (top-k of at most the
    number of classes)."""
    best = paddle.topk(logits, min(5, logits.shape[1]), axis=1)[1]
    hits = best == labels.unsqueeze(1)
    return hits[:, 0].astype("int64").sum(), hits.astype("int64").sum()


def iteration_record(progress, averages: Dict[str, float], loss: float, lr: float,
                     ips: float, elapsed: float, clock: RunClock,
                     norms: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The `train_iter` record of metrics.jsonl for a logged step."""
    p = progress
    record = {"kind": "train_iter", "epoch": p.current, "iter": p.batch_index,
              "global_step": p.global_step, "loss": loss, "avg_loss": averages["loss"],
              "top1": averages["top1"], "lr": lr, "ips": ips, "elapsed": elapsed,
              "eta_epoch": clock.eta_epoch(p.batch_index),
              "eta_run": clock.eta_run(p.global_step, p.evals_done)}
    if norms is not None:
        record["grad_norms"], record["weight_norms"] = norms["grad"], norms["weight"]
    return record


def epoch_record(epoch: int, global_step: int, averages: Dict[str, float], lr: float,
                 seconds: float) -> Dict[str, Any]:
    """The `epoch` record of metrics.jsonl before evaluation and the best are added."""
    return {"kind": "epoch", "epoch": epoch, "global_step": global_step,
            "train_loss": averages["loss"], "train_top1": averages["top1"],
            "train_top5": averages["top5"], "lr": lr, "epoch_seconds": seconds}


def progress_line(r: Dict[str, Any], epochs: int, steps: int) -> str:
    """The line of a logged iteration (a `train_iter` record)."""
    return (f"epoch {r['epoch']}/{epochs}  iter {r['iter']}/{steps}  "
            f"loss {r['loss']:.4f} (avg {r['avg_loss']:.4f})  top1 {r['top1']:.2f}%  "
            f"lr {r['lr']:.6f}  {r['ips']:.1f} img/s  elapsed {format_duration(r['elapsed'])}  "
            f"eta epoch {format_duration(r['eta_epoch'])}  "
            f"eta run {format_duration(r['eta_run'])}")


def epoch_line(r: Dict[str, Any], epochs: int, eval_name: str, eta_run: Optional[float]) -> str:
    """The line of a finished epoch (an `epoch` record)."""
    line = (f"epoch {r['epoch']}/{epochs} done  train loss {r['train_loss']:.4f} top1 "
            f"{r['train_top1']:.2f}% top5 {r['train_top5']:.2f}%")
    if f"{eval_name}_top1" in r:
        line += (f"  {eval_name} loss {r[f'{eval_name}_loss']:.4f} top1 "
                 f"{r[f'{eval_name}_top1']:.2f}% top5 {r[f'{eval_name}_top5']:.2f}% "
                 f"({format_duration(r['eval_seconds'])})")
    if r["best_top1"] is not None:
        line += f"  best {r['best_top1']:.2f}% (epoch {r['best_epoch']})"
    return line + f"  elapsed {format_duration(r['elapsed'])}  eta run {format_duration(eta_run)}"


def eval_status_line(epoch: int, epochs: int, eval_name: str, done: int, total: int) -> str:
    return (f"epoch {epoch}/{epochs}  evaluating on the {eval_name} images: batch "
            f"{done}/{total}")


def status_line(epoch: int, epochs: int, step: int, steps: int, loss: float,
                clock: RunClock, global_step: int, evals_done: int, elapsed: float) -> str:
    """The live status (console.py) after `step` of `steps`; no speed or ETA until two
    steps are timed, because the first also pays for one-time set-up (primitives,
    allocations) and would be off by an order of magnitude."""
    line = f"epoch {epoch}/{epochs}  iter {step}/{steps}  loss {loss:.4f}  "
    if clock.steps_timed() < 2:
        return line + f"elapsed {format_duration(elapsed)}  (timing the first steps)"
    return (line + f"{clock.images_per_step / clock.step_time():.0f} img/s  "
            f"elapsed {format_duration(elapsed)}  "
            f"eta epoch {format_duration(clock.eta_epoch(step))}  "
            f"eta run {format_duration(clock.eta_run(global_step, evals_done))}")
