"""What a run tells its user: readable lines on the terminal and in `train.log`, and the
same records as JSON lines in `metrics.jsonl` for plots and comparisons to read back."""
import json
import os
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, TextIO

from ..console import Console
from ..errors import UserError

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


class RunLog:
    def __init__(self, output_dir: str, console: Optional[Console] = None,
                 enabled: bool = True):
        """`enabled=False` (processes other than rank 0) prints and writes nothing."""
        self.console = console or Console(sys.stdout)
        self.output_dir = output_dir
        self.enabled = enabled
        if enabled:
            self._text = open(os.path.join(output_dir, LOG_FILE), "a", encoding="utf-8")
            self._json = open(os.path.join(output_dir, METRICS_FILE), "a", encoding="utf-8")

    def info(self, message: str, console: bool = True) -> None:
        """A line for the console (unless `console=False`) and `train.log`."""
        if not self.enabled:
            return
        if console:
            self.console.line(message)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._write(self._text, "".join(f"[{stamp}] {line}\n" for line in message.splitlines()))

    def status(self, message: str) -> None:
        """What the run is doing now: live on a terminal, never in `train.log`."""
        if self.enabled:
            self.console.status(message)

    def record(self, record: Dict[str, Any]) -> None:
        if self.enabled:
            self._write(self._json, json.dumps(record, sort_keys=True) + "\n")

    def _write(self, f: TextIO, text: str) -> None:
        try:
            f.write(text)
            f.flush()
        except OSError as e:
            raise UserError(f"cannot write {f.name}: {e.strerror or e}; free space or fix "
                            "permissions, then resume with --resume (the last checkpoint is "
                            "intact)") from None

    def close(self) -> None:
        if self.enabled:
            self._text.close()
            self._json.close()


def read_metrics(path: str) -> List[Dict[str, Any]]:
    """Records of a run's metrics.jsonl (a path to the file or to the run directory)."""
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def iter_kind(records: List[Dict[str, Any]], kind: str) -> Iterator[Dict[str, Any]]:
    return (r for r in records if r.get("kind") == kind)


def truncate_metrics(output_dir: str, global_step: int) -> None:
    """Forget records past a checkpoint, so a resumed run's log reads as one run's."""
    path = os.path.join(output_dir, METRICS_FILE)
    if not os.path.isfile(path):
        return
    kept = [r for r in read_metrics(path) if r.get("global_step", 0) <= global_step]
    temp = path + ".tmp"
    with open(temp, "w", encoding="utf-8") as f:
        for record in kept:
            f.write(json.dumps(record, sort_keys=True) + "\n")
    os.replace(temp, path)
