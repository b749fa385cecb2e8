"""What a person watching a run sees: whole lines, and one status line that is live.

On a terminal the status line is redrawn in place (carriage return, erase to the end of
the line), cut to the terminal's width so that it never wraps (a wrapped line can no
longer be redrawn). In a file or a pipe a carriage-return status turns into garbage, so
there the status is printed as a plain line when nothing was printed for
`HEARTBEAT_SECONDS`: a log that is followed with `tail -f` still moves between the
`log_every` lines. Under the package's own launcher, rank 0 sends its status to a file
that the parent process draws (`relay_to`), because only the parent knows the terminal.
"""
import os
import shutil
import sys
import time
from typing import Callable, Optional, TextIO

HEARTBEAT_SECONDS = 15.0
# Shown at once even in a file: the first sign of progress, and the first with a speed
# and an ETA (the trainer's first status has none; the first step pays for set-up).
EARLY_STATUSES = 2
STATUS_ENV = "PADDLE_RESNET_STATUS_FILE"  # set by launch.py for rank 0
_ERASE = "\r\x1b[K"


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "--:--:--"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Console:
    def __init__(self, stream: Optional[TextIO] = None, live: Optional[bool] = None,
                 relay_to: Optional[str] = None, clock: Callable[[], float] = time.monotonic):
        """`live=None`: live when `stream` is a terminal. `relay_to`: write each status
        to this file (replaced atomically) instead of showing it."""
        self.stream = stream or sys.stdout
        self.live = is_terminal(self.stream) if live is None else live
        self.relay_to = relay_to
        self.clock = clock
        self._shown = ""  # the status line now on the terminal
        self._quiet_since: Optional[float] = None  # when a plain line was last printed
        self._statuses = 0

    @classmethod
    def for_this_process(cls, stream: Optional[TextIO] = None) -> "Console":
        return cls(stream, relay_to=os.environ.get(STATUS_ENV))

    def line(self, text: str) -> None:
        """A line that stays (a log line, an error, a set-up step)."""
        if self.relay_to is not None:
            # The parent reads this stream and the relayed status apart: a status still in
            # the file once this line is out would be drawn after it, stale (a step-1
            # status under the epoch's last log line). Withdrawn first, so never.
            withdraw_status(self.relay_to)
        # The status it replaces is stale by now; the next one is at most a second away.
        self._write((_ERASE if self._shown else "") + text + "\n")
        self._shown = ""
        self._quiet_since = self.clock()

    def status(self, text: str) -> None:
        """What the run is doing now; replaces the previous status."""
        if self.relay_to is not None:
            temp = f"{self.relay_to}.{os.getpid()}.tmp"
            try:
                with open(temp, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(temp, self.relay_to)
            except OSError:
                pass  # a status is worth nothing once stale; the log lines still go out
        elif self.live:
            self._shown = text[:max(20, shutil.get_terminal_size((120, 24)).columns - 1)]
            self._write(_ERASE + self._shown)
        elif (self._statuses < EARLY_STATUSES or self._quiet_since is None
              or self.clock() - self._quiet_since >= HEARTBEAT_SECONDS):
            self.line(text)
        self._statuses += 1

    def end_status(self) -> None:
        """Leave the terminal at the start of a clean line (before exiting)."""
        if self._shown:
            self._write(_ERASE)
            self._shown = ""

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # the terminal is gone (SIGHUP, a closed pipe): the run goes on, logged


def withdraw_status(path: str) -> None:
    """No relayed status at `path` (there may have been none)."""
    try:
        os.remove(path)
    except OSError:
        pass


def read_status(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None
