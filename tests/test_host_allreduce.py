"""The shared-memory all-reduce among the training processes of one host
(paddle_resnet/host_allreduce.py), with real processes."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from paddle_resnet.device import Processes, open_host_channel
from paddle_resnet.errors import ConfigError
from paddle_resnet.host_allreduce import SHM_DIR, unavailable_reason

WORKER = os.path.join(ROOT, "tests", "host_allreduce_worker.py")
pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=str(unavailable_reason()))


def start(role, rank, world, capacity, rounds, name=""):
    return subprocess.Popen([sys.executable, WORKER, role, str(rank), str(world),
                             str(capacity), str(rounds), name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def open_ranks(world, capacity, rounds, roles=None):
    first = start("create", 0, world, capacity, rounds)
    name = first.stdout.readline().strip()
    assert name and os.path.exists(os.path.join(SHM_DIR, name))
    others = [start((roles or {}).get(rank, "attach"), rank, world, capacity, rounds, name)
              for rank in range(1, world)]
    time.sleep(1.0)  # attached: the segment's name may go
    first.stdin.write("\n")
    first.stdin.flush()
    return name, [first, *others]


def test_three_processes_add_in_rank_order_and_leave_nothing_behind():
    name, ranks = open_ranks(world=3, capacity=8000, rounds=60)
    outputs = [rank.communicate(timeout=120) for rank in ranks]
    for rank, (out, err) in zip(ranks, outputs):
        assert rank.returncode == 0, err[-2000:]
        assert out.rstrip().endswith("ok")
        # A vector one float larger than the channel is refused, naming both sizes.
        assert "too large: 8004 bytes do not fit this channel's 8000" in out
        assert "strided out: out's arrays must be contiguous" in out
    assert not os.path.exists(os.path.join(SHM_DIR, name))


def test_a_peer_that_ended_is_an_error_naming_it_not_a_hang():
    _, (first, quitter) = open_ranks(world=2, capacity=8000, rounds=5, roles={1: "quit"})
    assert quitter.wait(timeout=60) == 0
    start_wait = time.perf_counter()
    out, err = first.communicate(timeout=60)
    assert first.returncode != 0
    assert f"PeerLost: training process 1 of 2 (pid {quitter.pid}) ended while process 0 " \
        "waited for it in a shared-memory all-reduce" in err
    assert time.perf_counter() - start_wait < 20


def test_asking_for_shared_memory_on_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match=r"dist.shared_memory = true averages CPU processes' "
                       r"gradients, but the device is gpu:0; set dist.shared_memory=null"):
        open_host_channel(Processes(rank=0, world=2), True, "gpu:0", 1024)


def test_one_process_or_a_gpu_keeps_what_it_had():
    for processes, place in ((Processes(), "cpu"), (Processes(0, 2), "gpu:0")):
        assert open_host_channel(processes, None, place, 1024) == (processes, "")


@pytest.mark.parametrize("view_of", ["writable_view", "pointer_view"])
def test_the_gradient_views_write_into_the_tensor(view_of):
    """GradientAverage sums the slots straight into the gradients through these views:
    DLPack's where Paddle marks it writable (3.3), the data pointer where numpy makes it
    read-only (Paddle 3.0's capsule: 'output array is read-only' at the first step)."""
    import paddle
    from paddle_resnet import device
    tensor = paddle.arange(6, dtype="float32").reshape([2, 3])
    view = getattr(device, view_of)(tensor)
    assert view.shape == (6,) and view.flags.writeable
    np.add(view, 1.0, out=view)
    assert tensor.numpy().tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    if view_of == "pointer_view":
        with pytest.raises(TypeError, match="float32 CPU tensors"):
            device.pointer_view(paddle.arange(3, dtype="int64"))
