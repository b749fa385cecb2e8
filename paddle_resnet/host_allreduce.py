"""All-reduce among the training processes of one host, through shared memory.

Why: on a CPU the package trains in one process per core (docs/performance.md), and
Paddle's DataParallel averages their gradients over gloo's TCP transport. With every core
busy, each of those exchanges waits for the peer's transport thread to be scheduled:
ResNet-20's step measured ~12% slower with DataParallel and the per-step stop agreement
than without any exchange, where the same bytes cost ~1 ms between idle processes.
Processes of one host can read each other's vectors instead.

The protocol, one round per call, every rank making the same calls in the same order (as
for any collective): a rank copies its vector into its slot for the round's parity (or
fills the slot in place, `outgoing`), publishes the round's number, waits until every
rank has published it, and combines all slots in rank order, so every rank computes the
same bits. A slot is written again two rounds later, and by then every rank has read it:
a rank publishes round k + 1 only after it has read round k. The slot's bytes are seen
before the round number written after them because x86-64 keeps stores in order (and
loads in order); so the channel opens only on x86-64 Linux, and elsewhere the run keeps
DataParallel.

The segment is named only while the ranks attach (`unlink` after), so a run that is killed
leaves nothing in /dev/shm; its size is reserved up front (`posix_fallocate`), so a full
/dev/shm is an error when it opens, not a SIGBUS mid-run.
"""
import mmap
import os
import platform
import secrets
import sys
import time
from typing import Optional, Sequence

import numpy as np

SHM_DIR = "/dev/shm"
LINE = 64  # bytes: each rank's counters on a cache line of their own
COMBINE = {"sum": np.add, "max": np.maximum, "min": np.minimum}
# How long a rank waits for a peer that still exists before giving up (one that ended is
# caught within LIVENESS_SECONDS): rank 0 writing a checkpoint takes seconds; a peer
# stopped in a debugger may take minutes. gloo's transport gives up after 30 s.
WAIT_SECONDS = 10 * 60
# The wait spins this long (a step's exchange usually waits well under a millisecond),
# then sleeps between looks, checking now and then that the peers still exist.
SPIN_SECONDS = 0.002
LIVENESS_SECONDS = 0.5


class PeerLost(RuntimeError):
    """A peer process ended while this one waited for it."""


def unavailable_reason() -> Optional[str]:
    """Why this host cannot open a channel, or None."""
    if not sys.platform.startswith("linux"):
        return f"shared-memory all-reduce runs on Linux, not {sys.platform}"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ("shared-memory all-reduce relies on x86-64's store order, and this CPU is "
                f"{platform.machine()}")
    if not os.path.isdir(SHM_DIR):
        return f"{SHM_DIR} does not exist"
    return None


def _round_up(n: int) -> int:
    return -(-n // LINE) * LINE


def _segment_bytes(world: int, capacity: int) -> int:
    """Each rank's counters, then two slots (a round's parity) per rank."""
    return world * LINE + 2 * world * _round_up(capacity)


class HostAllReduce:
    """One rank's end of a channel for `world` processes and vectors of up to `capacity`
    bytes. `create` (one rank) makes the segment, `attach` (the others) opens it by name;
    once all have, one calls `unlink`."""

    def __init__(self, fd: int, name: str, rank: int, world: int, capacity: int):
        self.name, self.rank, self.world = name, rank, world
        self.capacity = _round_up(capacity)
        try:
            self._map = mmap.mmap(fd, _segment_bytes(world, capacity))
        finally:
            os.close(fd)
        # Per rank: [last round published, pid]; int64 stores are atomic when aligned.
        self._counters = np.ndarray((world, LINE // 8), np.int64, self._map)
        self._round = 0
        self._counters[rank, :2] = (-1, os.getpid())

    @classmethod
    def create(cls, world: int, capacity: int, rank: int = 0) -> "HostAllReduce":
        name = f"paddle_resnet_{os.getpid()}_{secrets.token_hex(6)}"
        path = os.path.join(SHM_DIR, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # ENOSPC now rather than SIGBUS later
            os.posix_fallocate(fd, 0, _segment_bytes(world, capacity))
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        channel = cls(fd, name, rank, world, capacity)
        channel._counters[:, 0] = -1  # no rank has published a round before it attaches
        return channel

    @classmethod
    def attach(cls, name: str, rank: int, world: int, capacity: int) -> "HostAllReduce":
        return cls(os.open(os.path.join(SHM_DIR, name), os.O_RDWR), name, rank, world, capacity)

    def unlink(self) -> None:
        try:
            os.unlink(os.path.join(SHM_DIR, self.name))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self._counters = None
        self._map.close()

    def fits(self, array: np.ndarray) -> bool:
        return array.nbytes <= self.capacity

    def _slot(self, rank: int, parity: int, dtype, count: int) -> np.ndarray:
        offset = self.world * LINE + (2 * rank + parity) * self.capacity
        return np.ndarray((count,), dtype, self._map, offset)

    def outgoing(self, dtype, count: int) -> np.ndarray:
        """This rank's slot for the next round. Filled in place and handed to `reduce`
        (before any other call of it), it is published without a copy."""
        return self._slot(self.rank, self._round % 2, np.dtype(dtype), count)

    def reduce(self, array: np.ndarray, op: str = "sum",
               out: Optional[Sequence[np.ndarray]] = None) -> Optional[np.ndarray]:
        """Every rank's `array` combined by `op` (sum, max, min) in rank order: the same
        bits on every rank. Shapes and dtypes must match across ranks. With `out`
        (contiguous arrays whose sizes add up to the array's, e.g. views of gradients) the
        result is written into them in order, in the one pass that combines the slots, and
        nothing is returned."""
        flat = np.ascontiguousarray(array).reshape(-1)
        if not self.fits(flat):
            raise ValueError(f"{flat.nbytes} bytes do not fit this channel's "
                             f"{self.capacity}")
        if out is not None:  # checked before this rank publishes the round
            held = sum(target.size for target in out)
            if held != flat.size:
                raise ValueError(f"out holds {held} elements, the array {flat.size}")
            if not all(target.flags.c_contiguous for target in out):
                raise ValueError("out's arrays must be contiguous (a reshaped copy would "
                                 "receive the result)")
        k, parity = self._round, self._round % 2
        self._round += 1
        mine = self._slot(self.rank, parity, flat.dtype, flat.size)
        if mine.ctypes.data != flat.ctypes.data:  # not filled in place (outgoing)
            mine[:] = flat
        self._counters[self.rank, 0] = k  # after the slot's bytes (x86-64 store order)
        self._wait_for_round(k)
        slots = [self._slot(rank, parity, flat.dtype, flat.size) for rank in range(self.world)]
        if out is None:
            result = np.empty_like(flat)
            self._combine(slots, COMBINE[op], result)
            return result.reshape(array.shape)
        start = 0
        for target in out:
            part = slice(start, start + target.size)
            self._combine([slot[part] for slot in slots], COMBINE[op], target.reshape(-1))
            start = part.stop
        return None

    @staticmethod
    def _combine(parts, combine, result: np.ndarray) -> None:
        """result = ((parts[0] op parts[1]) op parts[2]) ..., rank order."""
        if len(parts) == 1:
            np.copyto(result, parts[0])
            return
        combine(parts[0], parts[1], out=result)
        for part in parts[2:]:
            combine(result, part, out=result)

    def _wait_for_round(self, k: int) -> None:
        counters = self._counters
        start = time.perf_counter()
        if int(counters[:, 0].min()) >= k:
            return
        while time.perf_counter() - start < SPIN_SECONDS:
            if int(counters[:, 0].min()) >= k:
                return
        pause, checked = 1e-5, time.perf_counter()
        while int(counters[:, 0].min()) < k:
            time.sleep(pause)
            pause = min(2 * pause, 1e-3)
            now = time.perf_counter()
            if now - checked > LIVENESS_SECONDS:
                checked = now
                self._check_peers(k)
                if now - start > WAIT_SECONDS:
                    late = [r for r in range(self.world) if counters[r, 0] < k]
                    raise TimeoutError(f"process {self.rank} of {self.world} waited "
                                       f"{WAIT_SECONDS // 60} min for process(es) "
                                       f"{', '.join(map(str, late))} in a shared-memory "
                                       "all-reduce")

    def _check_peers(self, k: int) -> None:
        for rank in range(self.world):
            if rank == self.rank or self._counters[rank, 0] >= k:
                continue
            pid = int(self._counters[rank, 1])
            if pid and not _alive(pid):  # 0: not attached yet
                raise PeerLost(f"training process {rank} of {self.world} (pid {pid}) ended "
                               f"while process {self.rank} waited for it in a shared-memory "
                               "all-reduce")


def _alive(pid: int) -> bool:
    """Whether process `pid` runs: it exists and is not a zombie (one that ended and that
    its parent, the launcher, has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # "pid (command) state ...": the command may hold spaces and parentheses.
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
