"""What a checkpoint holds of a run, and a run made whole again from one (exact resume:
docs/reliability.md)."""
from typing import Any, Dict, Optional, Tuple

import paddle

from .. import checkpoint as ckpt
from ..config import Config
from ..device import (Processes, gather_running_statistics, kernel_hardware,
                      restore_running_statistics)
from ..errors import CheckpointError
from .build import TrainingParts
from .meters import TrainMeter
from .progress import Progress


def load_resumable(path: str, cfg: Config) -> Dict[str, Any]:
    """The checkpoint at `path`, if it is a run of the model `cfg` trains."""
    state = ckpt.load_checkpoint(path)
    stored = state.get("config", {}).get("model", {}).get("name")
    if stored != cfg["model.name"]:
        raise CheckpointError(f"{path} holds a {stored} run but the config says model.name = "
                              f"{cfg['model.name']}; resume with the run's own config")
    return state


def checkpoint_state(parts: TrainingParts, procs: Processes, progress: Progress,
                     meter: TrainMeter, cfg: Config) -> Dict[str, Any]:
    """A collective: every process takes part (each one's BN running statistics)."""
    return {"model": parts.model.state_dict(),
            "running_statistics": gather_running_statistics(parts.model, procs),
            "optimizer": ckpt.optimizer_state_for_saving(parts.optimizer, parts.model),
            "schedule": parts.schedule.state_dict(), "rng": paddle.get_rng_state(),
            "amp": parts.amp.state_dict(), "progress": progress.stored(meter.sums),
            "config": cfg.to_dict(), "arithmetic": arithmetic(parts)}


def arithmetic(parts: TrainingParts) -> Dict[str, str]:
    """What sets the run's rounding beyond its config and process count, as the run header
    words it: a checkpoint moved to a host without bf16 kernels trains on in float32, and
    its resumed run can no longer equal an uninterrupted one bit for bit."""
    return {"hardware": kernel_hardware(parts.place), "kernels": parts.speed.arithmetic()}


def arithmetic_note(path: str, stored: Optional[Dict[str, str]],
                    now: Dict[str, str]) -> Optional[str]:
    """One line naming what differs between the run that wrote `path` and this one, or
    None (also for checkpoints written before they recorded it)."""
    if not stored:
        return None
    wording = {"hardware": "on {}", "kernels": "with \"{}\""}
    changed = [key for key in wording if stored.get(key) != now[key]]
    if not changed:
        return None
    then = " ".join(wording[key].format(stored.get(key)) for key in changed)
    here = " ".join(wording[key].format(now[key]) for key in changed)
    return (f"{path} was trained {then}, this run is {here}: it goes on from the checkpoint, "
            "but will not equal an uninterrupted run bit for bit")


def restore(state: Dict[str, Any], path: str, parts: TrainingParts, procs: Processes
            ) -> Tuple[Progress, TrainMeter, Optional[str]]:
    """Loads `state` into `parts`; returns the progress, the epoch's meter and a note
    when the resumed run cannot equal an uninterrupted one bit for bit."""
    ckpt.load_model_state(parts.model, state["model"], path)
    per_rank = state.get("running_statistics")  # None: written by one process
    written_by = len(per_rank) if per_rank is not None else 1
    note = None
    if per_rank is not None and written_by == procs.world:
        restore_running_statistics(parts.model, per_rank[procs.rank])
    elif written_by != procs.world:
        note = (f"{path} was written by {written_by} process(es), this run has {procs.world}: "
                "every process starts from rank 0's BN running statistics, so the run will "
                "not equal an uninterrupted one bit for bit")
    other_arithmetic = arithmetic_note(path, state.get("arithmetic"), arithmetic(parts))
    note = " ".join(filter(None, [note, other_arithmetic])) or None
    ckpt.load_optimizer_state(parts.optimizer, parts.model, state["optimizer"])
    parts.schedule.set_state_dict(state["schedule"])
    if state.get("rng") is not None:
        paddle.set_rng_state(state["rng"])
    parts.amp.set_state_dict(state.get("amp", {}))
    stored = state["progress"]
    meter = TrainMeter(stored["train_sums"]) if "train_sums" in stored else TrainMeter()
    return Progress.from_stored(stored), meter, note
