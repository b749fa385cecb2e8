"""The shared-memory gradient exchange's own work per step (device.GradientAverage): the
time it takes to move a model's gradients into the channel and the average back, without
any wait for a peer (a channel of one process), per model, against another checkout.

    python benchmarks/gradient_exchange.py --models resnet20 resnet18 \
        --checkout /tmp/before   # e.g. git worktree add /tmp/before HEAD~1

Each (checkout, model) is timed in a fresh process importing that checkout's package,
interleaved over repeats; the table gives medians. The exchange's wait for the slower
process is not in it: that is the step's, and quickstart_speed.py and frameworks.py time
whole steps.
"""
import argparse
import os
import statistics
import subprocess
import sys

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALLS = 20


def worker(name: str) -> float:
    """Milliseconds per GradientAverage call on `name`'s gradients (this checkout)."""
    import dataclasses
    import time

    import paddle

    from paddle_resnet.device import GradientAverage, Processes, channel_capacity
    from paddle_resnet.host_allreduce import HostAllReduce
    from paddle_resnet.models import build_model

    paddle.seed(0)
    model = build_model(name)
    model(paddle.randn([2, 3, 32, 32])).sum().backward()
    host = HostAllReduce.create(1, channel_capacity(model))
    host.unlink()
    # Two processes' scaling (1/2) over a channel that only this one fills: no waiting.
    average = GradientAverage(model, dataclasses.replace(Processes(0, 2), host=host))
    for _ in range(3):  # first touches of the segment's pages
        average()
    start = time.perf_counter()
    for _ in range(CALLS):
        average()
    return (time.perf_counter() - start) / CALLS * 1e3


def run(root: str, name: str) -> float:
    env = dict(os.environ, PYTHONPATH=root)  # ahead of any installed copy
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name],
                         env=env, cwd=root, capture_output=True, text=True)
    if out.returncode != 0:  # e.g. an unknown model, or a checkout without the channel
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: timing {name} at {root} failed: {last}")
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18"])
    parser.add_argument("--checkout", help="another checkout of this repository to time "
                        "beside this one")
    parser.add_argument("--repeats", type=int, default=3)
    add_json_argument(parser)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(worker(args.worker))
        return
    roots = {"this checkout": ROOT}
    if args.checkout:
        if not os.path.isfile(os.path.join(args.checkout, "paddle_resnet", "host_allreduce.py")):
            parser.error(f"--checkout {args.checkout} is not a checkout with the shared-memory "
                         "channel (paddle_resnet/host_allreduce.py, 2026-12-05 on); give one, "
                         "e.g. git worktree add /tmp/before HEAD~1")
        roots[f"at {args.checkout}"] = os.path.abspath(args.checkout)
    times = {(label, name): [] for label in roots for name in args.models}
    for _ in range(args.repeats):
        for name in args.models:
            for label, root in roots.items():
                times[label, name].append(run(root, name))
    rows = [{"model": name, "checkout": label, "ms_per_call": statistics.median(runs),
             "runs": runs} for (label, name), runs in times.items()]
    print(f"{'model':<10} {'checkout':<28} {'ms per call':>12}  runs")
    for row in rows:
        print(f"{row['model']:<10} {row['checkout']:<28} {row['ms_per_call']:>12.2f}  "
              + " ".join(f"{t:.2f}" for t in row["runs"]))
    write_json(args.json, {"calls": CALLS, "rows": rows})


if __name__ == "__main__":
    main()
