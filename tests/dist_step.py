"""Data-parallel training steps through the package's own pieces; run directly (one
process) or under paddle.distributed.launch. Saves the parameters after the steps and the
global loss/accuracy sums of the last, as numpy arrays, to argv[1] (rank 0 only).
argv[2], `shared` or `gloo` (the default), is how the processes average their gradients
(dist.shared_memory on or off; `oversized` asks the default for a channel larger than
/dev/shm, and prints the note of its fallback); argv[3] the number of steps (1); argv[4]
`distinct` gives the processes different halves of the global batch (the same half by
default)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()  # first: as a run, before Paddle loads
import paddle  # noqa: E402

from paddle_resnet.config import load_config  # noqa: E402
from paddle_resnet.data import MEAN_STD, BatchLoader, Split  # noqa: E402
from paddle_resnet.device import (all_reduce, data_parallel, init_processes,  # noqa: E402
                                  open_host_channel)
from paddle_resnet.optim import build_optimizer, build_schedule  # noqa: E402
from paddle_resnet.engine.step import train_step  # noqa: E402
from paddle_resnet.models import build_model  # noqa: E402

out = sys.argv[1]
exchange = sys.argv[2] if len(sys.argv) > 2 else "gloo"
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1
distinct = len(sys.argv) > 4 and sys.argv[4] == "distinct"
procs, note = open_host_channel(init_processes(), {"shared": True, "gloo": False}.get(exchange),
                                "cpu", 1 << 50 if exchange == "oversized" else 1 << 22)
print(f"note: {note}", flush=True)
paddle.seed(0)
rng = np.random.default_rng(0)
# A global batch of 128 whose two halves are the same 64 images (unless `distinct`): each
# process's BN then sees the statistics of the whole batch, so plain BN is exactly
# equivalent to one process's too.
half = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
labels = rng.integers(0, 10, size=64)
other = rng.integers(0, 256, size=half.shape, dtype=np.uint8) if distinct else half
split = Split(np.concatenate([half, other]),
              np.concatenate([labels, rng.permutation(labels) if distinct else labels]))
cfg = load_config(None, ["train.batch_size=128", "optimizer.lr=0.1", "train.epochs=1"])
# In order and unaugmented, so that both shards are exactly `half` (test_data.py checks
# that the shards of a shuffled, augmented batch make up the single-process batch).
loader = BatchLoader(split, 128, *MEAN_STD["cifar10"], augment="none", shuffle=False,
                     drop_last=True, seed=0, rank=procs.rank, world=procs.world)
model = build_model("resnet20")
forward_model, average_gradients = data_parallel(model, procs)
assert (average_gradients is not None) == (exchange == "shared" and procs.distributed)
schedule = build_schedule(cfg, len(loader))
optimizer = build_optimizer(cfg, model.parameters(), schedule)
images, targets = next(iter(loader.epoch(0)))
for _ in range(steps):
    loss, logits = train_step(forward_model, images, targets, optimizer,
                              average_gradients=average_gradients)
sums = {"loss": all_reduce(loss.detach() * targets.shape[0], procs),
        "correct": all_reduce((logits.argmax(1) == targets).astype("int64").sum(), procs),
        "samples": all_reduce(paddle.to_tensor(targets.shape[0]), procs)}
if procs.main:
    arrays = {f"param/{k}": v.numpy() for k, v in model.state_dict().items()}
    arrays.update({f"sum/{k}": v.numpy() for k, v in sums.items()})
    np.savez(out, **arrays)
