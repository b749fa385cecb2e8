"""The package's own training step (paddle_resnet.engine.step.train_step) under different
speed options, side by side in one process, interleaved, so that the machine's drift hits
every variant alike.

    python benchmarks/speed_paths.py --model resnet20 --batch 64 --processes 2 \
        --variant default= --variant paddle=conv=paddle --variant no-norm=onednn_norm=false

A variant is `NAME=OPTION,OPTION,...` with options as the config's `speed.*` keys without
`speed.` (empty: the defaults). `--processes N` times one of N training processes: its
share of the cores as threads, `--batch` its own batch. Prints a table of images/s (median
over rounds) and each variant's ratio to the first; `--json PATH` also writes them.
"""
import argparse
import os
import statistics
import sys
import time

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import paddle  # noqa: E402

from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()  # MKL's fast path on AMD and freed memory kept, as in a run
from paddle_resnet.engine.step import speed_options, train_step, training_model  # noqa: E402
from paddle_resnet.errors import ConfigError  # noqa: E402
from paddle_resnet.models.registry import UnknownModelError, get_builder  # noqa: E402
from paddle_resnet.models.layers import batch_shape  # noqa: E402
from paddle_resnet.speed import plan_speed  # noqa: E402


def parse_variant(text: str):
    name, _, options = text.partition("=")
    if not name:
        raise ValueError(f"--variant {text!r}: expected NAME=OPTION,... (options may be empty)")
    return name, [o for o in options.split(",") if o]


def make_variant(model_name, batch, processes, overrides):
    plan = plan_speed(speed_options(overrides), "cpu", processes, say=print)
    paddle.seed(0)
    model = training_model(model_name, plan)
    optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    images = paddle.randn(batch_shape(batch, plan.data_format))
    labels = paddle.randint(0, 10, [batch])
    return (plan.as_applied(model.speed_paths),  # what the model took, as a run's header says
            lambda: train_step(model, images, labels, optimizer))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--variant", action="append", default=[], metavar="NAME=OPTIONS")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    add_json_argument(p)
    args = p.parse_args()
    for name in ("batch", "processes", "steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)} must be at least 1")
    try:
        get_builder(args.model)
        variants = [parse_variant(v) for v in args.variant or ["default="]]
        steps = {}
        for name, overrides in variants:
            plan, steps[name] = make_variant(args.model, args.batch, args.processes, overrides)
            print(f"{name}: {plan.describe()}", file=sys.stderr)
    except (UnknownModelError, ValueError, ConfigError) as e:
        p.error(str(e))
    # oneDNN's thread count is read when its primitives are made: the last plan's threads
    # hold for all variants, and every plan of one run asks for the same number.
    for step in steps.values():
        step(), step()  # primitives made, allocator warm
    rates = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                loss, _ = step()
            float(loss)  # wait for the last step
            rates[name].append(args.steps * args.batch / (time.perf_counter() - start))
    first = statistics.median(next(iter(rates.values())))
    record(args, rates, first)
    print(f"| {args.model}, batch {args.batch}, 1 of {args.processes} processes | images/s "
          "(median) | rounds | vs first |")
    print("|---|---:|---|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.1f} | {', '.join(f'{v:.0f}' for v in values)} | "
              f"{median / first:.2f}x |")


def record(args, rates, first):
    rows = [{"variant": name, "images_per_s": statistics.median(values), "runs": values,
             "vs_first": statistics.median(values) / first} for name, values in rates.items()]
    write_json(args.json, {"model": args.model, "batch": args.batch, "processes": args.processes,
                           "steps": args.steps, "rows": rows})


if __name__ == "__main__":
    main()
