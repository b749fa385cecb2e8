"""A run's output directory: one run per directory, never mixed with another."""
import glob
import os

from ..device import Processes, barrier
from ..errors import ConfigError, unwritable_output_dir
from .. import checkpoint as ckpt
from .runlog import LOG_FILE, METRICS_FILE

CONFIG_FILE = "config.yaml"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, LOG_FILE)


def previous_run_files(output_dir: str):
    found = [name for name in RUN_FILES if os.path.exists(os.path.join(output_dir, name))]
    return found + sorted(os.path.basename(p) for p in
                          glob.glob(os.path.join(output_dir, "*" + ckpt.SUFFIX)))


def check_output_dir(output_dir: str, resuming: bool, overwrite: bool):
    """Refuse to mix runs; returns the files of a previous run there."""
    existing = previous_run_files(output_dir) if os.path.isdir(output_dir) else []
    if existing and not resuming and not overwrite:
        raise ConfigError(f"output_dir {output_dir} already holds a run ({existing[0]}); "
                          "add --resume to continue it, --overwrite to replace it, or "
                          "set -o output_dir=NEW_DIR")
    return existing


def prepare_output_dir(output_dir: str, resuming: bool, overwrite: bool,
                       processes: Processes = Processes()) -> None:
    """Refuse to mix runs; then (on rank 0 only) clear and create the directory."""
    existing = check_output_dir(output_dir, resuming, overwrite)
    barrier(processes)  # every process has looked before rank 0 writes anything
    if not processes.main:
        return
    if not resuming:
        for name in existing:
            os.remove(os.path.join(output_dir, name))
    try:
        os.makedirs(output_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(output_dir, ckpt.TEMP_MARK + "*")):
            os.remove(stale)  # half-written checkpoints of a killed run, never read
        probe = os.path.join(output_dir, ckpt.TEMP_MARK + "probe")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise unwritable_output_dir(output_dir, e) from None
