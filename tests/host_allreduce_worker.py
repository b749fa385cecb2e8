"""One rank of a shared-memory channel for tests/test_host_allreduce.py: argv = role
(create | attach | quit), rank, world, capacity, rounds, [name]. `create` prints the
segment's name and waits for a line on stdin (the others attached) before it unlinks it;
every rank checks each round against the sums it computes itself from every rank's seeded
inputs (returned, and written in place into given arrays), and prints `ok` at the end.
`quit` attaches and exits without taking part."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from paddle_resnet.host_allreduce import HostAllReduce  # noqa: E402


def inputs(rank: int, k: int):
    rng = np.random.default_rng([k, rank])
    size = int(np.random.default_rng(k).integers(1, 2000))  # every rank the same size
    return (rng.standard_normal(size).astype(np.float32),
            rng.integers(-1000, 1000, size=(3, 2), dtype=np.int64))


def main():
    role, rank, world, capacity, rounds = sys.argv[1], *map(int, sys.argv[2:6])
    if role == "create":
        channel = HostAllReduce.create(world, capacity, rank)
        print(channel.name, flush=True)
        sys.stdin.readline()
        channel.unlink()
    else:
        channel = HostAllReduce.attach(sys.argv[6], rank, world, capacity)
        if role == "quit":
            return
    for k in range(rounds):
        floats, ints = zip(*(inputs(r, k) for r in range(world)))
        expected = floats[0].copy()
        for other in floats[1:]:
            expected += other  # in rank order, as the channel adds
        got = channel.reduce(floats[rank])
        assert got.dtype == np.float32 and np.array_equal(got, expected), f"round {k}: sum"
        # Filled in place (outgoing) and summed into separate arrays, as gradients are.
        outgoing = channel.outgoing(np.float32, floats[rank].size)
        outgoing[:] = floats[rank]
        cut = floats[rank].size // 3
        targets = [np.full(cut, np.nan, np.float32),
                   np.full(floats[rank].size - cut, np.nan, np.float32)]
        assert channel.reduce(outgoing, out=targets) is None
        assert np.array_equal(np.concatenate(targets), expected), f"round {k}: into out"
        assert np.array_equal(channel.reduce(ints[rank], "max"), np.max(ints, axis=0)), k
        assert np.array_equal(channel.reduce(ints[rank], "min"), np.min(ints, axis=0)), k
    try:
        channel.reduce(np.zeros(capacity // 4 + 1, np.float32))
    except ValueError as e:
        print(f"too large: {e}")
    try:  # a reshaped copy of a strided array would receive the sum and drop it
        channel.reduce(np.zeros(4, np.float32), out=[np.zeros((4, 2), np.float32)[:, 0]])
    except ValueError as e:
        print(f"strided out: {e}")
    channel.close()
    print("ok", flush=True)


if __name__ == "__main__":
    main()
