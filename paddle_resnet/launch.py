"""Training in several processes through Paddle's launcher, as a user sees one process.

`python -m paddle.distributed.launch` starts the workers in sessions of their own, sends
their output to `launch_logs/workerlog.N`, and prints forty lines of its own settings.
This module runs the launcher in the background (its own output goes to
`launch_logs/launcher.log`) and shows on the console what rank 0 prints, as a single
process would. The one-line error of a failing worker is printed once on stderr (the
launcher stops the other workers when one fails, so none is left waiting), and a Ctrl-C
or SIGTERM is passed on to the launcher once, which passes SIGTERM to every worker: they
agree on a step, rank 0 writes the resumable checkpoint, and the run says how to resume.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional

from .cpu import usable_cores
from .errors import ConfigError, unwritable_output_dir

LOG_DIR = "launch_logs"
ERROR_PREFIX = "error: "
POLL_SECONDS = 0.2


def under_launcher() -> bool:
    """True inside a worker that paddle.distributed.launch started (even a 1-process one)."""
    return "PADDLE_TRAINERS_NUM" in os.environ


def default_processes(place: str, batch_size: int) -> int:
    """`--nproc auto`: on a CPU, one process per usable core (the fastest arrangement
    measured here, docs/performance.md), as many as divide the global batch; on a GPU one
    process (`--nproc N` uses N GPUs)."""
    if place != "cpu":
        return 1
    return max(n for n in range(1, usable_cores() + 1) if batch_size % n == 0)


def parse_nproc(value: str) -> Optional[int]:
    """`auto` -> None; otherwise a positive count."""
    if value == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"--nproc {value}: expected auto or a whole number of at least 1")
    return count


class _Follower:
    """Copies what a worker appends to its log to a stream, whole lines at a time, leaving
    out the worker's `error: ...` line (printed once on stderr at the end)."""

    def __init__(self, path: str, stream):
        self.path, self.stream = path, stream
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self.start, self.pending = self.offset, b""

    def poll(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        self.offset += len(chunk)
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()  # an unfinished line waits for the rest
        if final and self.pending:
            lines.append(self.pending)
            self.pending = b""
        shown = [text for text in (line.decode("utf-8", "replace") for line in lines)
                 if not text.startswith(ERROR_PREFIX)]
        if shown:
            self.stream.write("\n".join(shown) + "\n")
            self.stream.flush()

    def error_line(self) -> Optional[str]:
        """The first `error: ...` line this launch wrote to the log, if any."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.start)
                for raw in f:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    if line.startswith(ERROR_PREFIX):
                        return line
        except OSError:
            pass
        return None


def run_launcher(nproc: int, script: str, args: List[str], output_dir: str,
                 stdout=None, stderr=None) -> int:
    """Run `script args` in `nproc` processes under paddle.distributed.launch; returns
    the exit status (128 + signal number after a Ctrl-C or SIGTERM)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    log_dir = os.path.join(output_dir, LOG_DIR)
    try:
        os.makedirs(log_dir, exist_ok=True)
        launcher_log = open(os.path.join(log_dir, "launcher.log"), "ab")
    except OSError as e:
        raise unwritable_output_dir(output_dir, e) from None
    followers = [_Follower(os.path.join(log_dir, f"workerlog.{rank}"), stdout)
                 for rank in range(nproc)]
    # One thread per process: the processes share the cores. Unbuffered, so that rank 0's
    # lines reach the console as they are printed.
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PYTHONUNBUFFERED="1")
    # --nproc_per_node, not --devices: the latter fails on CPU-only builds.
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
               str(nproc), "--log_dir", log_dir, script, *args]
    with launcher_log:
        # A session of its own: a terminal's Ctrl-C reaches this process only, which
        # passes it on once (the launcher treats a second signal as "kill in 10 s").
        launcher = subprocess.Popen(command, env=env, stdout=launcher_log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        received: List[int] = []

        def forward(signum, frame):
            if not received:
                # The workers see SIGTERM whatever the signal: it is what the launcher sends.
                stdout.write(f"{signal.Signals(signum).name} received: stopping the {nproc} "
                             "processes after this step with a resumable checkpoint "
                             "(Ctrl-C again to stop without one)\n")
                stdout.flush()
                launcher.send_signal(signal.SIGTERM)
            elif signum == signal.SIGINT:  # a second Ctrl-C: stop without a checkpoint
                launcher.send_signal(signal.SIGINT)
            received.append(signum)

        # Handlers can only be set from the main thread; elsewhere signals stay the caller's.
        in_main = threading.current_thread() is threading.main_thread()
        previous = ({s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
                    if in_main else {})
        try:
            while launcher.poll() is None:
                followers[0].poll()
                time.sleep(POLL_SECONDS)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        followers[0].poll(final=True)
    if launcher.returncode != 0 or received:
        error = next((line for line in (f.error_line() for f in followers) if line), None)
        if error is None and not received:
            error = (f"error: a training process stopped (exit status {launcher.returncode}) "
                     f"without a message, and the launcher stopped the others; see "
                     f"{log_dir}/workerlog.N; the last checkpoint resumes with --resume")
        if error:
            stderr.write(error + "\n")
            stderr.flush()
    return 128 + received[0] if received else launcher.returncode
