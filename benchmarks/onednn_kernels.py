"""The same oneDNN convolutions inside two training steps: the package's default step
(one of its training processes: one thread, fused blocks, bf16 inputs where the CPU has
bf16 kernels) against PyTorch's fastest CPU setting (channels_last + bf16 autocast) on one
thread, each in a fresh process under `ONEDNN_VERBOSE=1`, oneDNN's own timing of every
primitive call. One table: each convolution by direction and shape, ms per call on each
side and their ratio, and every primitive's total per step.

    python benchmarks/onednn_kernels.py --torch-python ~/venv-torch/bin/python

Both frameworks pick their implementations through the same oneDNN dispatch, so a ratio
far from 1 says how a framework calls a kernel (its scratchpad, the types it reads and
writes, what the memory around the call is doing), not which kernel it has.
"""
import argparse
import os
import subprocess
import sys

from onednn_verbose import STEPS, TIMED, WARMUP, primitive_calls
from results_file import add_json_argument, write_json
from torch_python import require_torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
# The models torch_twin.build has (it imports torch, which this Python may not have).
TWINNED = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18")


def torch_worker(model_name: str, batch: int) -> None:
    """frameworks.py's `torch channels_last bf16` step on one thread, printing TIMED after
    the warm-up."""
    from frameworks import torch_train_step
    step = torch_train_step(model_name, batch, threads=1, fast=True)
    for index in range(WARMUP + STEPS):
        if index == WARMUP:
            print(TIMED, flush=True)
        step()


def primitives_of(command) -> dict:
    done = subprocess.run(command, env=dict(os.environ, ONEDNN_VERBOSE="1"), cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{done.stderr[-2000:]}")
    calls = primitive_calls(done.stdout.splitlines())
    if not calls:
        raise SystemExit(f"{' '.join(command[:2])} printed no oneDNN primitive: is its "
                         "framework built with oneDNN?")
    return calls


def per_call(entry) -> str:
    return f"{entry[0] / entry[1]:.2f}" if entry else "-"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20", choices=TWINNED)
    p.add_argument("--batch", type=int, default=64,
                   help="one process's batch (the quickstart's 128 over 2 processes)")
    p.add_argument("--torch-python", default=sys.executable,
                   help="the Python that has PyTorch, e.g. a venv of its own")
    add_json_argument(p)
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.torch_worker:
        return torch_worker(args.model, args.batch)
    if args.batch < 1:
        p.error(f"--batch {args.batch} must be at least 1")
    require_torch(p, args.torch_python)
    # The package's side is profile_step.py's worker: the package's own train_step, as
    # one of 2 training processes (one thread), freed memory kept as in a run.
    package = primitives_of([sys.executable, os.path.join(HERE, "profile_step.py"),
                             "--model", args.model, "--batch", str(args.batch),
                             "--processes", "2", "--primitives-worker"])
    torch = primitives_of([args.torch_python, os.path.abspath(__file__), "--torch-worker",
                           "--model", args.model, "--batch", str(args.batch)])
    keys = sorted(set(package) | set(torch),
                  key=lambda k: -max(package.get(k, (0, 0))[0], torch.get(k, (0, 0))[0]))
    print(f"| {args.model}, batch {args.batch}, one thread: oneDNN primitive | shape "
          "| package ms per call | PyTorch ms per call | package / PyTorch "
          "| package ms per step | PyTorch ms per step |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for name, shape in keys:
        ours, theirs = package.get((name, shape)), torch.get((name, shape))
        ratio = (f"{(ours[0] / ours[1]) / (theirs[0] / theirs[1]):.2f}"
                 if ours and theirs and shape else "")
        print(f"| {name} | {shape} | {per_call(ours) if shape else ''} "
              f"| {per_call(theirs) if shape else ''} | {ratio} "
              f"| {ours[0] if ours else 0:,.2f} | {theirs[0] if theirs else 0:,.2f} |")
        rows.append({"primitive": name, "shape": shape,
                     "package": {"ms_per_step": ours[0], "calls_per_step": ours[1]}
                     if ours else None,
                     "torch": {"ms_per_step": theirs[0], "calls_per_step": theirs[1]}
                     if theirs else None})
    totals = [sum(ms for ms, _ in side.values()) for side in (package, torch)]
    print(f"| all oneDNN primitives | | | | | {totals[0]:,.1f} | {totals[1]:,.1f} |")
    write_json(args.json, {"model": args.model, "batch": args.batch, "steps": STEPS,
                           "rows": rows, "total_ms_per_step": {"package": totals[0],
                                                               "torch": totals[1]}})


if __name__ == "__main__":
    main()
