"""Training in several processes through Paddle's launcher, as a user sees one process.

`python -m paddle.distributed.launch` starts the workers in sessions of their own, sends
their output to `launch_logs/workerlog.N`, and prints forty lines of its own settings.
This module runs the launcher in the background (its own output goes to
`launch_logs/launcher.log`) and shows on the console what rank 0 prints, as a single
process would, with rank 0's live status line (console.py). The run is one unit:
- the launcher and the workers die with the process the user started (launcher_main.py),
  so a SIGKILL of tools/train.py still ends the run, through the usual SIGTERM and its
  checkpoint;
- a Ctrl-C, SIGTERM or SIGHUP is passed on to the launcher once, which passes SIGTERM to
  every worker: they agree on a step, rank 0 writes the resumable checkpoint, and the run
  says how to resume; a second Ctrl-C kills every process of the run at once;
- a worker that fails makes the launcher stop the others; its one-line error, or else
  which worker died and where its log is, is printed once on stderr.
"""
import glob
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional

from .console import STATUS_ENV, Console, read_status, withdraw_status
from .cpu import usable_cores
from .errors import ConfigError, unwritable_output_dir
from .launcher_main import LAUNCHER_ENV, PARENT_ENV, die_with_parent

LOG_DIR = "launch_logs"
STATUS_FILE = "status"
ERROR_PREFIX = "error: "
POLL_SECONDS = 0.2
# Paddle's launcher copies the whole environment, tokens included, into its log folder
# (per worker, and the job's own log); run folders get shared, so the copies are deleted
# as soon as nobody needs them: the workers delete their backup_env once Paddle has read
# it (device.init_processes), the rest goes here, while the run lives and at its end.
UNREAD_ENVIRONMENT_COPIES = ("envlog.*", "default.*.log")
ENVIRONMENT_COPIES = UNREAD_ENVIRONMENT_COPIES + ("backup_env.*.json",)
# What Paddle's launcher logs when a worker fails (paddle/distributed/launch/job).
_FAILED_WORKER = re.compile(r"Container rank (\d+) status failed .* code (-?\d+) log (\S+)")


def under_launcher() -> bool:
    """True inside a worker that paddle.distributed.launch started (even a 1-process one)."""
    return "PADDLE_TRAINERS_NUM" in os.environ


def under_parent() -> bool:
    """True inside a worker of tools/train.py's own launch (whose parent talks to the
    user), False in a single process or under a launcher the user started."""
    return under_launcher() and LAUNCHER_ENV in os.environ


# What stops a run with a resumable checkpoint, in the parent and in every trainer.
# SIGHUP: the terminal closed; a run that dies with it should still leave a checkpoint.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_message(signum: int, processes: int = 1) -> str:
    """The one line a run prints when a signal asks it to stop."""
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    what = "training" if processes == 1 else f"the {processes} processes"
    return (f"{name}: stopping {what} after this step with a resumable checkpoint (Ctrl-C "
            "again to stop at once)")


def die_with_launcher() -> bool:
    """In a worker of tools/train.py's launch: end (SIGTERM: checkpoint, then exit) when
    the launcher ends. False if it has ended already."""
    return die_with_parent(int(os.environ[LAUNCHER_ENV]))


# Each process normalises BatchNorm over its own share of the batch (docs/distributed.md),
# and BN's statistics get noisy on few images: Goyal et al. 2017 keep 32 per worker, and
# Wu & He 2018 (Group Normalization, Fig. 1) measure BN's error rising below that.
MIN_IMAGES_PER_PROCESS = 32


def default_processes(place: str, batch_size: int) -> int:
    """`--nproc auto`: on a CPU, one process per usable core (the fastest arrangement
    measured here, docs/performance.md), as many as divide the global batch and leave each
    at least MIN_IMAGES_PER_PROCESS images (the cores left over become threads); on a GPU
    one process (`--nproc N` uses N GPUs)."""
    if place != "cpu":
        return 1
    return max(n for n in range(1, usable_cores() + 1)
               if batch_size % n == 0 and (n == 1 or batch_size // n >= MIN_IMAGES_PER_PROCESS))


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
    """Copies what a worker appends to its log to a console, whole lines at a time, leaving
    out the worker's `error: ...` line (printed once on stderr at the end)."""

    def __init__(self, path: str, console: Console):
        self.path, self.console = path, console
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
        for text in (line.decode("utf-8", "replace") for line in lines):
            if not text.startswith(ERROR_PREFIX):
                self.console.line(text)

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


class _StatusFollower:
    """Draws the status rank 0 relays through a file (console.py) when it changes."""

    def __init__(self, path: str, console: Console):
        self.path, self.console, self.shown = path, console, None
        withdraw_status(path)  # a stopped run's last status is not this run's

    def poll(self) -> None:
        text = read_status(self.path)
        if text and text != self.shown:
            self.shown = text
            self.console.status(text)


# What a worker's log shows when a peer vanished under a collective: a consequence.
_LOST_PEER = ("gloo::IoException", "gloo::TimeoutException", "Connection reset by peer",
              "Connection closed by peer", "in a shared-memory all-reduce")


def _lost_a_peer(log: str) -> bool:
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    return any(marker in text for marker in _LOST_PEER)


# The last line of a Python traceback: the exception's type and message.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b.*$")


def python_exception(log: str) -> Optional[str]:
    """`Type: message` of the last traceback in a worker's log, if it ended on one."""
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    start = text.rfind("Traceback (most recent call last):")
    if start < 0:
        return None
    found = [line for line in text[start:].splitlines()[1:]
             if line and not line[0].isspace() and _EXCEPTION_LINE.match(line)]
    return found[-1].strip() if found else None


def failed_worker(launcher_log: str, start: int, nproc: int) -> Optional[str]:
    """The line for a worker that died without a message (e.g. killed for memory), from
    what Paddle's launcher logged about it since offset `start`. The launcher names the
    first worker it finds failed, which may be one that aborted because another vanished
    mid-allreduce; the one whose log shows no such loss is then named instead."""
    try:
        with open(launcher_log, "rb") as f:
            f.seek(start)
            found = _FAILED_WORKER.findall(f.read().decode("utf-8", "replace"))
    except OSError:
        return None
    if not found:
        return None
    rank, code, log = found[-1]
    rank, code = int(rank), int(code)
    log_of = lambda r: os.path.join(os.path.dirname(log), f"workerlog.{r}")  # noqa: E731
    if _lost_a_peer(log):
        vanished = [r for r in range(nproc) if r != rank and not _lost_a_peer(log_of(r))]
        if len(vanished) == 1:
            return (f"error: training process {vanished[0]} of {nproc} died without a message "
                    f"(killed from outside, or for memory), and process {rank} lost its "
                    f"connection to it; its log is {log_of(vanished[0])}; the launcher "
                    "stopped the others; the last checkpoint resumes with --resume")
    if code < 0 and -code in signal.valid_signals():
        how = f"was killed by {signal.Signals(-code).name}" + (
            " (the kernel does this when memory runs out)" if -code == signal.SIGKILL else "")
    else:
        exception = python_exception(log)
        if exception:
            return (f"error: training process {rank} of {nproc} stopped on {exception}; its "
                    f"log is {log}; the launcher stopped the others; the last checkpoint "
                    "resumes with --resume")
        how = f"exited with status {code}"
    return (f"error: training process {rank} of {nproc} {how} without a message; its log "
            f"is {log}; the launcher stopped the others; the last checkpoint resumes with "
            "--resume")


def _children(pid: int) -> List[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:  # the field after the state is the parent's PID
                found.append(int(name))
    return found


def kill_now(launcher: subprocess.Popen) -> None:
    """SIGKILL the launcher and its workers (each in a session of its own, so no process
    group reaches them all). Checkpoints are written atomically: what was saved stays."""
    if not os.path.isdir("/proc"):
        launcher.kill()
        return
    for pid in _children(launcher.pid) + [launcher.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def remove_environment_copies(log_dir: str, patterns=ENVIRONMENT_COPIES) -> None:
    for pattern in patterns:
        for path in glob.glob(os.path.join(glob.escape(log_dir), pattern)):
            try:
                os.remove(path)
            except OSError:
                pass


def run_launcher(nproc: int, script: str, args: List[str], output_dir: str,
                 stdout=None, stderr=None) -> int:
    """Run `script args` in `nproc` processes under paddle.distributed.launch; returns
    the exit status (128 + signal number after a Ctrl-C, SIGTERM or SIGHUP)."""
    console = Console(stdout or sys.stdout)
    stderr = stderr or sys.stderr
    log_dir = os.path.join(output_dir, LOG_DIR)
    try:
        os.makedirs(log_dir, exist_ok=True)
        launcher_log_path = os.path.join(log_dir, "launcher.log")
        launcher_log = open(launcher_log_path, "ab")
    except OSError as e:
        raise unwritable_output_dir(output_dir, e) from None
    launcher_log_start = launcher_log.tell()
    followers = [_Follower(os.path.join(log_dir, f"workerlog.{rank}"), console)
                 for rank in range(nproc)]
    status_path = os.path.join(log_dir, STATUS_FILE)
    status = _StatusFollower(status_path, console)
    # One thread per process: the processes share the cores. Unbuffered, so that rank 0's
    # lines reach the console as they are printed.
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PYTHONUNBUFFERED="1", **{PARENT_ENV: str(os.getpid()),
                                        STATUS_ENV: status_path})
    # --nproc_per_node, not --devices: the latter fails on CPU-only builds.
    command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "launcher_main.py"),
               "--nproc_per_node", str(nproc), "--log_dir", log_dir, script, *args]
    with launcher_log:
        # A session of its own: a terminal's Ctrl-C reaches this process only, which
        # passes it on once (the launcher treats a second signal as "kill in 10 s").
        # Its death signal is tied to the thread that starts it: this one, the main one.
        launcher = subprocess.Popen(command, env=env, stdout=launcher_log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        received: List[int] = []

        def forward(signum, frame):
            if not received:
                # The workers see SIGTERM whatever the signal: it is what the launcher sends.
                console.line(stop_message(signum, nproc))
                launcher.send_signal(signal.SIGTERM)
            elif signum == signal.SIGINT and signal.SIGINT not in received[1:]:
                kill_now(launcher)
                from .checkpoint import last_checkpoint_note
                console.line("second Ctrl-C: stopped every process at once; "
                             + last_checkpoint_note(output_dir))
            received.append(signum)

        # Handlers can only be set from the main thread; elsewhere signals stay the caller's.
        in_main = threading.current_thread() is threading.main_thread()
        previous = ({s: signal.signal(s, forward) for s in STOP_SIGNALS} if in_main else {})
        try:
            while launcher.poll() is None:
                followers[0].poll()
                status.poll()
                remove_environment_copies(log_dir, UNREAD_ENVIRONMENT_COPIES)
                time.sleep(POLL_SECONDS)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            remove_environment_copies(log_dir)
        followers[0].poll(final=True)
        console.end_status()
    if launcher.returncode != 0 and not received:
        error = (next((line for line in (f.error_line() for f in followers) if line), None)
                 or failed_worker(launcher_log_path, launcher_log_start, nproc)
                 or f"error: a training process stopped (exit status {launcher.returncode}) "
                    f"without a message, and the launcher stopped the others; see "
                    f"{log_dir}/workerlog.N; the last checkpoint resumes with --resume")
        stderr.write(error + "\n")
        stderr.flush()
    return 128 + received[0] if received else launcher.returncode
