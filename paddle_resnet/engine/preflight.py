"""Every check a run can fail before it trains, in one place: run by tools/train.py's
process before it compiles anything or starts a worker (one exit status, in seconds),
and again by each worker as it builds (build.py), where the same functions run."""
from typing import Optional

from ..config import Config
from ..device import MixedPrecision, check_sync_bn, resolve_device
from ..errors import ConfigError
from .eval_engine import resolve_engine
from .rundir import check_output_dir


def check_batch(batch: int, processes: int, eval_batch: int = 0) -> None:
    """`batch`: train.batch_size; `eval_batch`: eval.batch_size (0: chosen, eval_batch.py)."""
    if batch % processes:
        raise ConfigError(f"train.batch_size = {batch} (the global batch) must be divisible "
                          f"by the {processes} processes")
    if 0 < eval_batch < processes:
        raise ConfigError(f"eval.batch_size = {eval_batch} gives some of the {processes} "
                          f"processes no image; set it to at least {processes}, or 0 to let "
                          "the package choose")


def preflight(cfg: Config, resume: Optional[str], overwrite: bool) -> str:
    """The device a run with `cfg` trains on, or the error that stops it; `resume` is the
    checkpoint path (None for a new run)."""
    from ..checkpoint import check_checkpoint_path
    from ..data.cifar import resolve_archive
    check_output_dir(cfg["output_dir"], resume is not None, overwrite)
    if resume is not None:
        check_checkpoint_path(resume)
    resolve_archive(cfg["data.dataset"], cfg["data.data_file"])
    place = resolve_device(cfg["device"])
    MixedPrecision(cfg["speed.amp"], cfg["speed.amp_dtype"], cfg["speed.loss_scale"], place)
    check_sync_bn(cfg["dist.sync_bn"], place)
    resolve_engine(cfg["eval.engine"], place, cfg["eval.precision"])
    return place
