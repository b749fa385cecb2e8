"""Not a benchmark: a rate timed from outside, as quickstart_speed.py and eval_batch.py take
it. A whole command runs on `small` and on `large` images; the difference of the two wall
times is the time of the extra images only (start-up, loading and evaluation cancel out)."""
import sys
from typing import Callable


def rate_of_difference(what: str, small: int, large: int,
                       seconds_for: Callable[[int], float]) -> float:
    """Images per second of the `large - small` extra images; `seconds_for(n)` runs the
    command on n images. Prints the two times; stops with one line when the longer run
    comes out faster (the host's speed moved under it)."""
    small_seconds, large_seconds = seconds_for(small), seconds_for(large)
    if large_seconds <= small_seconds:
        sys.exit(f"error: {what}: {large} images took {large_seconds:.1f} s, {small} took "
                 f"{small_seconds:.1f} s; the host's speed moved too much to time the "
                 "difference (run it again with the machine to itself)")
    rate = (large - small) / (large_seconds - small_seconds)
    print(f"{what}: {small_seconds:.1f} s / {large_seconds:.1f} s -> {rate:.1f} img/s",
          file=sys.stderr, flush=True)
    return rate
