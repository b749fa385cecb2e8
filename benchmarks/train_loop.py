"""Training throughput: the bare step (forward, backward, optimizer step on a batch that
is already a tensor) vs this package's whole loop (data, augmentation, metrics, logging,
ETA, VisualDL), interleaved in one run, so the loop's overhead is visible.

    python benchmarks/train_loop.py --data-file cifar-10-python.tar.gz [--model resnet20]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import paddle  # noqa: E402

from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()  # MKL's fast path on AMD, before Paddle computes
from paddle_resnet.config import load_config  # noqa: E402
from paddle_resnet.optim import build_optimizer, build_schedule  # noqa: E402
from paddle_resnet.engine.runlog import read_metrics  # noqa: E402
from paddle_resnet.engine.step import train_step, training_model  # noqa: E402
from paddle_resnet.engine.trainer import Trainer  # noqa: E402
from paddle_resnet.models.layers import batch_shape  # noqa: E402
from paddle_resnet.speed import plan_speed  # noqa: E402


def bare_steps(model_name, batch, steps):
    """The package's own step on the speed paths a one-process run takes (the loop below
    is the Trainer in this process)."""
    cfg = load_config(None, [f"model.name={model_name}"])
    plan = plan_speed(cfg, "cpu", 1)
    paddle.seed(0)
    model = training_model(model_name, plan)
    optimizer = build_optimizer(cfg, model.parameters(), build_schedule(cfg, steps))
    images = paddle.randn(batch_shape(batch, plan.data_format))
    labels = paddle.randint(0, 10, [batch])
    for index in range(steps + 2):
        if index == 2:  # the first steps allocate memory and pick kernels
            start = time.perf_counter()
        loss, _ = train_step(model, images, labels, optimizer)
    float(loss)
    return batch * steps / (time.perf_counter() - start)


def package_loop(model_name, batch, steps, data_file):
    with tempfile.TemporaryDirectory() as out:
        # One epoch of `steps + 2` iterations; ips is read from the log lines after the
        # first two (the same warm-up the bare step leaves out).
        cfg = load_config(None, [f"model.name={model_name}", f"data.data_file={data_file}",
                                 f"data.train_samples={batch * (steps + 2)}",
                                 "data.test_samples=256", "train.epochs=1",
                                 f"train.batch_size={batch}", "train.log_every=1",
                                 "log.histogram_every=0", f"output_dir={out}/run"])
        with open(os.devnull, "w") as quiet:
            Trainer(cfg, stream=quiet).fit()
        iterations = [r for r in read_metrics(f"{out}/run") if r["kind"] == "train_iter"]
        elapsed = iterations[-1]["elapsed"] - iterations[1]["elapsed"]
        return batch * (len(iterations) - 2) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-file", required=True)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_argument(parser)
    args = parser.parse_args()
    bare, full = [], []
    for _ in range(args.repeats):
        bare.append(bare_steps(args.model, args.batch, args.steps))
        full.append(package_loop(args.model, args.batch, args.steps, args.data_file))
    b, f = statistics.median(bare), statistics.median(full)
    print(f"| {args.model}, batch {args.batch}, {args.steps} steps x {args.repeats} | "
          "images/s (median) | vs bare step |")
    print("|---|---:|---:|")
    print(f"| bare step (tensor batch, forward+backward+update) | {b:.1f} | 1.00 |")
    print(f"| paddle_resnet loop (data, augmentation, metrics, logging every step, VisualDL) "
          f"| {f:.1f} | {f / b:.2f} |")
    write_json(args.json, {"model": args.model, "batch": args.batch, "bare": bare, "loop": full,
                           "ratio": f / b, "paddle": paddle.__version__})


if __name__ == "__main__":
    main()
