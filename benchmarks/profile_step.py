"""Where a training step's time goes: Paddle's profiler over a few dygraph steps, reduced
to one table of operators (forward and backward kernels together) by their share of the
step's CPU time; with `--onednn`, a second table of the oneDNN primitives inside them
(every convolution by direction and shape, reorders, ...), from oneDNN's own timing
(`ONEDNN_VERBOSE=1`, in a fresh process), which sees into the custom operators where
Paddle's profiler does not.

    python benchmarks/profile_step.py --model resnet20 --batch 64 --processes 2 [--onednn]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import paddle  # noqa: E402
import paddle.profiler as profiler  # noqa: E402

from onednn_verbose import STEPS, TIMED, WARMUP, primitive_times  # noqa: E402
from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()  # MKL's fast path on AMD and freed memory kept, as in a run
from paddle_resnet.engine.step import speed_options, train_step, training_model  # noqa: E402
from paddle_resnet.errors import ConfigError  # noqa: E402
from paddle_resnet.models.registry import UnknownModelError, get_builder  # noqa: E402
from paddle_resnet.models.layers import batch_shape  # noqa: E402
from paddle_resnet.speed import plan_speed  # noqa: E402


def operator_times(trace_file: str):
    """Total microseconds per operator name in a Chrome trace, and the steps' total."""
    with open(trace_file, encoding="utf-8") as f:
        events = json.load(f)["traceEvents"]
    per_op, steps = defaultdict(float), 0.0
    for event in events:
        if event.get("ph") != "X":
            continue
        category = event.get("cat", "")
        if category == "ProfileStep":
            steps += event["dur"]
        elif category == "Operator":
            # Names carry the call's own duration ("Conv2dGradNodeFinal[58.3 ms]").
            per_op[event["name"].split("[")[0].replace(" dygraph", "")] += event["dur"]
    return per_op, steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--processes", type=int, default=1,
                        help="profile one of N training processes (its share of the cores "
                             "as threads; --batch is its own batch)")
    parser.add_argument("--onednn", action="store_true",
                        help="also time the oneDNN primitives inside the step")
    parser.add_argument("--primitives-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--speed", action="append", default=[], metavar="KEY=VALUE",
                        help="a speed option as in the config without `speed.`, e.g. "
                             "conv=paddle or conv_input_grad=false (repeatable); default: "
                             "as training on a CPU in one process")
    args = parser.parse_args()
    if args.batch < 1:
        parser.error(f"--batch {args.batch} must be at least 1")
    try:
        get_builder(args.model)
    except UnknownModelError as e:
        parser.error(str(e))
    try:
        options = speed_options(args.speed)
    except ConfigError as e:
        parser.error(str(e))
    if args.processes < 1:
        parser.error(f"--processes {args.processes} must be at least 1")
    plan = plan_speed(options, "cpu", args.processes)
    paddle.seed(0)
    model = training_model(args.model, plan)
    print(plan.as_applied(model.speed_paths).describe())
    optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    images = paddle.randn(batch_shape(args.batch, plan.data_format))
    labels = paddle.randint(0, 10, [args.batch])
    if args.primitives_worker:
        for index in range(WARMUP + STEPS):
            if index == WARMUP:
                print(TIMED, flush=True)
            float(train_step(model, images, labels, optimizer)[0])
        return
    with tempfile.TemporaryDirectory() as work:
        prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                                 scheduler=(WARMUP, WARMUP + STEPS),
                                 on_trace_ready=profiler.export_chrome_tracing(work))
        prof.start()
        for _ in range(WARMUP + STEPS):
            train_step(model, images, labels, optimizer)
            prof.step()
        prof.stop()
        trace = os.path.join(work, sorted(os.listdir(work))[-1])
        per_op, steps = operator_times(trace)
    # Operator events nest (a backward op contains its kernels' calls), so shares are of
    # the top-level names Paddle reports and need not sum to 100%.
    print(f"| {args.model}, batch {args.batch}: operator | ms per step | share of step |")
    print("|---|---:|---:|")
    for name, micros in sorted(per_op.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"| {name} | {micros / STEPS / 1000:,.1f} | {100 * micros / steps:.0f}% |")
    print(f"| whole step | {steps / STEPS / 1000:,.1f} | 100% |")
    if args.onednn:
        print_primitives(args, steps / STEPS / 1000)


def print_primitives(args, step_ms):
    worker = [a for a in sys.argv[1:] if a != "--onednn"] + ["--primitives-worker"]
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *worker],
                          env=dict(os.environ, ONEDNN_VERBOSE="1"), capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"the primitives' worker failed:\n{done.stderr[-2000:]}")
    times = primitive_times(done.stdout.splitlines())
    total = sum(times.values())
    print(f"\n| {args.model}, batch {args.batch}: oneDNN primitive | shape | ms per step "
          f"| share of the profiled step ({step_ms:,.1f} ms) |")
    print("|---|---|---:|---:|")
    for (name, shape), ms in sorted(times.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"| {name} | {shape} | {ms:,.2f} | {100 * ms / step_ms:.0f}% |")
    print(f"| all oneDNN primitives | | {total:,.1f} | {100 * total / step_ms:.0f}% |")


if __name__ == "__main__":
    main()
