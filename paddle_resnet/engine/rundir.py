"""A run's output directory: one run per directory, never mixed with another.

A file existing there says a run was; only a lock says a run *is*. The process the user
started holds an exclusive flock on `.run.lock` for its whole life, and the workers of
its launch a shared one on `.workers.lock` for theirs: the kernel drops both when a
process dies, so a crash never leaves a stale lock, and a run whose parent was killed
still counts as live until its last worker has written its checkpoint and gone.
"""
import fcntl
import glob
import os
import time
from typing import Optional

from ..device import Processes, barrier
from ..errors import ConfigError, UserError, unwritable_output_dir
from .. import checkpoint as ckpt
from .runlog import LOG_FILE, METRICS_FILE

CONFIG_FILE = "config.yaml"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, LOG_FILE)
LOCK_FILE = ".run.lock"
WORKERS_LOCK_FILE = ".workers.lock"


class RunDirLock:
    """`with RunDirLock(output_dir):` the one live run in `output_dir`, or a ConfigError
    naming the run that is (its PID and start time)."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self._file = None
        self._created: Optional[str] = None  # the outermost directory this lock made

    def __enter__(self) -> "RunDirLock":
        path = os.path.join(self.output_dir, LOCK_FILE)
        try:
            self._created = _first_missing(self.output_dir)
            os.makedirs(self.output_dir, exist_ok=True)
            self._file = open(path, "a+", encoding="utf-8")
        except OSError as e:
            raise unwritable_output_dir(self.output_dir, e) from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read()
            self._file.close()
            raise ConfigError(f"output_dir {self.output_dir} is in use by a live run "
                              f"({holder}); wait for it to end or stop it, or set -o "
                              "output_dir=NEW_DIR") from None
        if not _unlocked(os.path.join(self.output_dir, WORKERS_LOCK_FILE)):
            before = self._read()
            self.__exit__()
            raise ConfigError(f"output_dir {self.output_dir}: the training processes of the "
                              f"run before ({before}) are still writing their checkpoint; "
                              "try again in a few seconds")
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"PID {os.getpid()}, started "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._file.flush()
        return self

    def _read(self) -> str:
        self._file.seek(0)
        return self._file.read().strip() or "PID unknown"

    def __exit__(self, *exc) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        # A run refused before it wrote anything leaves no directory behind (nor the
        # parents it made, e.g. `output/` for the default `output/<model>`).
        if self._created and set(os.listdir(self.output_dir)) <= {LOCK_FILE,
                                                                 WORKERS_LOCK_FILE}:
            for name in os.listdir(self.output_dir):
                os.remove(os.path.join(self.output_dir, name))
            folder = os.path.abspath(self.output_dir)
            while not os.listdir(folder):
                os.rmdir(folder)
                if folder == self._created:
                    break
                folder = os.path.dirname(folder)


def _first_missing(path: str) -> Optional[str]:
    """The outermost directory of `path` that does not exist yet (None: all do)."""
    path, missing = os.path.abspath(path), None
    while not os.path.isdir(path):
        missing, path = path, os.path.dirname(path)
    return missing


def _unlocked(path: str) -> bool:
    try:
        with open(path, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # nothing can hold a lock on a file that cannot be opened
    return True


_held_by_this_worker: Optional[object] = None


def hold_as_worker(output_dir: str) -> None:
    """A worker of tools/train.py's launch marks the run live until it exits."""
    global _held_by_this_worker
    f = open(os.path.join(output_dir, WORKERS_LOCK_FILE), "a", encoding="utf-8")
    fcntl.flock(f, fcntl.LOCK_SH)
    _held_by_this_worker = f  # closed (and released) when the process ends


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


def write_config(output_dir: str, cfg) -> None:
    """The resolved config beside the run (`config.yaml`), as tools/train.py -c reads it."""
    path = os.path.join(output_dir, CONFIG_FILE)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(cfg.dump())
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}; free space or fix "
                        "permissions") from None
