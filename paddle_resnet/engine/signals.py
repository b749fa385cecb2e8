"""A signal as a request to stop after the current step, with a resumable checkpoint."""
import signal
import threading
from typing import Callable, Dict, Optional

from ..device import Processes, all_reduce
from ..errors import UserError
from ..launch import STOP_SIGNALS, stop_message


class Interrupted(UserError):
    """The run stopped on a signal; the run log has said where its checkpoint is."""

    shown = True  # cli.run prints nothing more

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequests:
    def __init__(self, say: Callable[[str], None]):
        """`say` reports the first request (once: the launcher repeats its SIGTERM)."""
        self.signum: Optional[int] = None
        self._say = say
        self._previous: Dict[int, object] = {}

    def request(self, signum: int = signal.SIGINT) -> None:
        self.signum = signum

    def _on_signal(self, signum, frame):
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl-C: leave now; checkpoints are atomic
            return
        self.signum = signum
        self._say(stop_message(signum))

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # else signals stay
            self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def agreed(self, procs: Processes) -> bool:
        """A signal reaches each process at its own moment; all stop at the same step."""
        if not procs.distributed:
            return self.signum is not None
        import paddle
        agreed = int(all_reduce(paddle.to_tensor(self.signum or 0, dtype="int64"), procs,
                                "max"))
        if agreed and self.signum is None:
            self.signum = agreed
        return agreed != 0
