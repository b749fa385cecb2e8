"""Training and evaluation throughput of this package's paths against PyTorch on the same
machine, each variant in its own process, interleaved over repeats (medians reported).

    python -m venv ~/venv-torch && ~/venv-torch/bin/pip install torch==2.13.0 numpy
    python benchmarks/frameworks.py --models resnet20 resnet18 --batch 128 \
        --torch-python ~/venv-torch/bin/python

Training variants, each the package's own step (engine/step.py:train_step) on a speed plan
(speed.plan_speed): Paddle's convolution in one process, with MKL's fast path (what the
package sets on AMD CPUs, paddle_resnet/speed/mkl.py) and with MKL's generic path
(`PADDLE_RESNET_MKL_FAST_PATH=0`); the same under `paddle.jit.to_static` (speed.to_static)
and in NHWC layout (speed.channels_last); the default speed paths (oneDNN convolutions,
bf16 where the CPU has bf16 kernels) in one process of one thread, in one process running
every core as threads, and one process per core under paddle.distributed.launch (the
default of `tools/train.py` on a CPU; the same global batch; the gradients averaged through
shared memory, as a run's default since 2026-12-05, dist.shared_memory), also with float32
convolutions (speed.conv_bf16=false), without the fused operators
(speed.fused_block=false) and with DataParallel averaging the gradients over gloo
(dist.shared_memory=false, the default before); and PyTorch eager with all cores and with one, and
with all cores in channels_last under `torch.autocast("cpu", torch.bfloat16)` (PyTorch's
fastest CPU training setting).
Evaluation variants: dygraph, the package's eval path (Paddle Inference with oneDNN,
eval.engine=auto) with one thread and with all cores, and PyTorch eager.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from results_file import add_json_argument, write_json  # noqa: E402  # noqa: E402
from torch_python import require_torch  # noqa: E402

WARMUP = 2  # steps that allocate memory and pick kernels are not throughput

DEFAULT = "paddle, 1 process per core (the default)"
DEFAULT_FLOAT32 = "paddle, 1 process per core, float32 convolutions"
PER_LAYER = "paddle, 1 process per core, per-layer (speed.fused_block=false)"
DATA_PARALLEL = "paddle, 1 process per core, DataParallel (dist.shared_memory=false)"
# launched as tools/train.py does on a CPU
PER_CORE = (DEFAULT, DEFAULT_FLOAT32, PER_LAYER, DATA_PARALLEL)
GENERIC_MKL = "paddle dygraph, MKL generic path"
THREADS = "paddle oneDNN, 1 process x all cores as threads"
ONE_THREAD = "paddle oneDNN, 1 process x 1 thread"
TORCH_FAST = "torch channels_last bf16"
TRAIN = ["paddle dygraph", GENERIC_MKL, "paddle to_static", "paddle channels_last", ONE_THREAD,
         THREADS, DEFAULT_FLOAT32, PER_LAYER, DATA_PARALLEL, DEFAULT, "torch", "torch 1 thread",
         TORCH_FAST]
# The `speed.*` options of each Paddle training variant (the rest: the defaults).
SPEED = {"paddle dygraph": ["conv=paddle"], GENERIC_MKL: ["conv=paddle"],
         "paddle to_static": ["to_static=true"],
         "paddle channels_last": ["conv=paddle", "channels_last=true"],
         DEFAULT_FLOAT32: ["conv_bf16=false"], PER_LAYER: ["fused_block=false"]}
EVAL = ["paddle dygraph", "paddle inference 1 thread", "paddle inference", "torch"]


def torch_model(name: str):
    """The one PyTorch twin of the package's models (benchmarks/torch_twin.py)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_twin
    return torch_twin.build(name)


def torch_setup(name, batch, threads, fast=False):
    """The twin, a random batch and the autocast context of a PyTorch variant (`fast`:
    channels_last + bf16 autocast, PyTorch's fastest CPU setting)."""
    import contextlib

    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_model(name)
    images, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    autocast = contextlib.nullcontext
    if fast:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
        autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    return model, images, labels, autocast


def torch_train_step(name, batch, threads, fast=False):
    """One PyTorch training step of the twin (SGD with momentum), as a callable."""
    import torch
    import torch.nn.functional as F
    model, images, labels, autocast = torch_setup(name, batch, threads, fast)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step():
        with autocast():
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def run_torch(mode, name, batch, steps, threads, fast=False):
    if mode == "train":
        return timed(torch_train_step(name, batch, threads, fast), batch, steps)
    import torch
    model, images, _, _ = torch_setup(name, batch, threads, fast)
    model.eval()
    with torch.no_grad():
        return timed(lambda: model(images).argmax(1), batch, steps)


def run_paddle(variant, mode, name, batch, steps):
    import paddle

    from paddle_resnet.runtime import prepare_process

    prepare_process()  # MKL's fast path on AMD and freed memory kept, as every run
    from paddle_resnet.device import (channel_capacity, data_parallel, init_processes,
                                      open_host_channel)
    from paddle_resnet.engine.step import speed_options, train_step, training_model
    from paddle_resnet.models import build_model
    from paddle_resnet.models.layers import batch_shape
    from paddle_resnet.speed import plan_speed
    procs = init_processes()
    if mode == "eval":
        paddle.seed(0)
        model = build_model(name)
        images = paddle.randn([batch, 3, 32, 32])
        if variant == "paddle dygraph":
            model.eval()
            with paddle.no_grad():
                return timed(lambda: model(images).argmax(1).numpy(), batch, steps)
        from paddle_resnet.engine.eval_engine import eval_forward
        from paddle_resnet.inference import cpu_threads
        threads = 1 if variant.endswith("1 thread") else cpu_threads(0)
        with eval_forward(model, "inference", "cpu", threads) as forward:
            return timed(lambda: forward(images).argmax(1).numpy(), batch, steps)
    # One thread per process but in the THREADS variant, which takes every core.
    processes = 1 if variant == THREADS else max(procs.world, os.cpu_count() or 1)
    plan = plan_speed(speed_options(SPEED.get(variant, [])), "cpu", processes)
    paddle.seed(0)
    model = training_model(name, plan)
    images = paddle.randn(batch_shape(batch // procs.world, plan.data_format))
    labels = paddle.randint(0, 10, [batch // procs.world])
    forward = paddle.jit.to_static(model) if variant == "paddle to_static" else model
    average = None
    if procs.distributed:  # the gradients averaged as a run's dist.shared_memory asks
        procs, _ = open_host_channel(procs, False if variant == DATA_PARALLEL else None, "cpu",
                                     channel_capacity(model))
        forward, average = data_parallel(model, procs)
    optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    return timed(lambda: float(train_step(forward, images, labels, optimizer,
                                          average_gradients=average)[0]), batch, steps)


def timed(step, batch, steps):
    for index in range(WARMUP + steps):
        if index == WARMUP:
            start = time.perf_counter()
        step()
    return batch * steps / (time.perf_counter() - start)


# --- the driver -----------------------------------------------------------------------------
def measure(variant, mode, name, batch, steps, torch_python=sys.executable) -> float:
    """images/s of one variant, in a fresh process (PyTorch's in `torch_python`)."""
    with tempfile.TemporaryDirectory() as work:
        result = os.path.join(work, "result.json")
        worker = [os.path.abspath(__file__), "--worker", variant, "--mode", mode,
                  "--models", name, "--batch", str(batch), "--steps", str(steps),
                  "--result", result]
        if variant in PER_CORE:
            # Imported here, not at the top, so that the parent stays free of the package.
            from paddle_resnet.cpu import usable_cores
            command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
                       str(usable_cores()), "--log_dir", os.path.join(work, "logs"), *worker]
        else:
            command = [torch_python if variant.startswith("torch") else sys.executable, *worker]
        env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
        if variant == GENERIC_MKL:
            env["PADDLE_RESNET_MKL_FAST_PATH"] = "0"
        if variant == THREADS:
            env["OMP_NUM_THREADS"] = str(os.cpu_count())
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
        if done.returncode != 0 or not os.path.exists(result):
            raise RuntimeError(f"{variant} ({mode}, {name}) failed:\n{done.stderr[-2000:]}")
        with open(result, encoding="utf-8") as f:
            return json.load(f)["images_per_s"]


def worker(args):
    variant, name = args.worker, args.models[0]
    if variant.startswith("torch"):
        threads = 1 if variant.endswith("1 thread") else os.cpu_count()
        rate = run_torch(args.mode, name, args.batch, args.steps, threads,
                         fast=variant == TORCH_FAST)
    else:
        rate = run_paddle(variant, args.mode, name, args.batch, args.steps)
    if int(os.environ.get("PADDLE_TRAINER_ID", "0")) == 0:
        with open(args.result, "w", encoding="utf-8") as f:
            json.dump({"images_per_s": rate}, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--train-seconds", type=float, default=20.0,
                        help="about how long each training measurement runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["train", "eval"])
    parser.add_argument("--variants", nargs="+", default=None,
                        choices=list(dict.fromkeys(TRAIN + EVAL)),
                        help="only these (the first is the base of the second column; "
                             "`torch` is always run)")
    add_json_argument(parser)
    parser.add_argument("--torch-python", default=sys.executable,
                        help="the Python that has PyTorch (e.g. a venv's), for the torch variants")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    require_torch(parser, args.torch_python)  # `torch` is always run
    rows = []
    for mode in args.modes:
        variants = TRAIN if mode == "train" else EVAL
        if args.variants:
            variants = [v for v in args.variants if v in variants]
            variants += [] if "torch" in variants else ["torch"]
        for name in args.models:
            # Size each measurement from one quick probe of the slowest variant.
            probe = measure(variants[0], mode, name, args.batch, 1, args.torch_python)
            steps = max(2, round(args.train_seconds * probe / args.batch))
            runs = {v: [] for v in variants}
            for _ in range(args.repeats):
                for variant in variants:  # interleaved: drift hits every variant alike
                    runs[variant].append(measure(variant, mode, name, args.batch, steps,
                                                 args.torch_python))
            base = statistics.median(runs[variants[0]])
            torch_rate = statistics.median(runs["torch"])
            print(f"\n| {mode} {name}, batch {args.batch}, {steps} steps x {args.repeats} | "
                  f"images/s (median) | vs {variants[0]} | vs torch |")
            print("|---|---:|---:|---:|")
            for variant, values in runs.items():
                median = statistics.median(values)
                rows.append({"mode": mode, "model": name, "variant": variant, "steps": steps,
                             "images_per_s": median, "runs": values,
                             # vs_dygraph: against the first variant (the key older files use)
                             "vs_dygraph": median / base, "vs_torch": median / torch_rate})
                print(f"| {variant} | {median:,.1f} | {median / base:.2f}x | "
                      f"{median / torch_rate:.2f}x |", flush=True)
    versions = {name: subprocess.run(
        [python, "-c", f"import {name}; print({name}.__version__)"],
        capture_output=True, text=True).stdout.strip()
        for name, python in (("paddle", sys.executable), ("torch", args.torch_python))}
    write_json(args.json, {"cpu_count": os.cpu_count(), **versions, "batch": args.batch,
                           "rows": rows})


if __name__ == "__main__":
    main()
