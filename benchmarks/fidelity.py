"""Fidelity against an independent implementation: this package and its PyTorch twin
(benchmarks/torch_twin.py) trained with the same recipe for a few epochs on all of
CIFAR-10, over several seeds; a table of test top-1, mean +- sd, and the difference.

    pip install torch==2.13.0      # or in a venv of its own, passed as --torch-python
    python benchmarks/fidelity.py --data-file cifar-10-python.tar.gz --epochs 3 --seeds 0 1 2
    # the twin only, normalising each half batch as the package's two processes do:
    python benchmarks/fidelity.py --data-file ... --sides torch --twin-bn-split 2 --json OUT

The recipe is read from the config (default configs/resnet20_onecycle.yaml) and passed
to both sides, with `train.epochs` replaced by `--epochs`: the schedule (one-cycle, or
multistep at fractions of the run) is compressed into those epochs on both sides alike.
The package trains as a user runs it
(`tools/train.py`, its default processes); the twin with PyTorch's default threads.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from results_file import add_json_argument, write_json
from torch_python import require_torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# Taken before anything imports paddle: paddle/base/__init__.py writes OMP_NUM_THREADS=1
# into os.environ, which would leave the twin, a child process, with one thread.
TWIN_ENVIRONMENT = dict(os.environ)


def twin_args(cfg, epochs: int, seed: int, data_file: str, bn_split: int):
    """benchmarks/torch_twin.py's flags for the config's recipe."""
    unsupported = {key: cfg[key] for key, wanted in
                   (("optimizer.name", ("sgd",)), ("schedule.name", ("onecycle", "multistep")),
                    ("data.augment", ("standard",)), ("data.dataset", ("cifar10",)),
                    ("schedule.warmup_epochs", (0.0,)), ("schedule.min_lr", (0.0,)))
                   if cfg[key] not in wanted}
    if unsupported:
        sys.exit(f"error: the twin implements SGD + one-cycle or multistep + standard "
                 f"augmentation on CIFAR-10 only; the config has {unsupported}")
    args = ["--data-file", data_file, "--model", cfg["model.name"], "--epochs", str(epochs),
            "--batch-size", str(cfg["train.batch_size"]), "--lr", str(cfg["optimizer.lr"]),
            "--momentum", str(cfg["optimizer.momentum"]),
            "--weight-decay", str(cfg["optimizer.weight_decay"]),
            "--label-smoothing", str(cfg["train.label_smoothing"]),
            "--schedule", cfg["schedule.name"], "--pct-start", str(cfg["schedule.pct_start"]),
            "--milestones", *map(str, cfg["schedule.milestones"]),
            "--gamma", str(cfg["schedule.gamma"]), "--seed", str(seed),
            "--bn-split", str(bn_split)]
    return args + (["--nesterov"] if cfg["optimizer.nesterov"] else [])


def run_paddle(config: str, epochs: int, seed: int, data_file: str, work: str,
               nproc: str = "auto", overrides=()) -> dict:
    from paddle_resnet.engine.runlog import read_metrics
    out = os.path.join(work, f"paddle_seed{seed}")
    extra = [arg for override in overrides for arg in ("-o", override)]
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", config,
                           "-o", f"train.epochs={epochs}", "-o", f"seed={seed}",
                           "-o", f"data.data_file={data_file}", "-o", f"output_dir={out}",
                           *extra, "--nproc", nproc], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"paddle_resnet seed {seed} failed: {done.stderr.strip()}")
    last = [r for r in read_metrics(out) if r["kind"] == "epoch"][-1]
    return {"test_top1": last["test_top1"], "train_loss": last["train_loss"],
            "seconds": last["elapsed"]}


def run_torch(cfg, epochs: int, seed: int, data_file: str, work: str,
              bn_split: int, python: str = sys.executable) -> dict:
    result = os.path.join(work, f"torch_seed{seed}.json")
    done = subprocess.run([python, os.path.join(ROOT, "benchmarks", "torch_twin.py"),
                           *twin_args(cfg, epochs, seed, data_file, bn_split), "--json", result],
                          cwd=ROOT, env=TWIN_ENVIRONMENT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"torch twin seed {seed} failed: {done.stderr.strip()[-2000:]}")
    with open(result, encoding="utf-8") as f:
        last = json.load(f)["epochs"][-1]
    return {"test_top1": last["test_top1"], "train_loss": last["train_loss"],
            "seconds": last["elapsed"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", required=True)
    p.add_argument("-c", "--config", default="configs/resnet20_onecycle.yaml")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sides", nargs="+", choices=("paddle", "torch"), default=["paddle", "torch"],
                   help="which implementations to train (default both)")
    p.add_argument("--twin-bn-split", type=int, default=1,
                   help="the twin normalises each batch in this many parts, e.g. 2 for the "
                        "package's two processes' per-process BN (default 1: whole batch)")
    p.add_argument("--nproc", default="auto",
                   help="the package's processes (tools/train.py --nproc; default auto)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for the package's runs (speed.conv_bf16=true)")
    p.add_argument("--torch-python", default=sys.executable,
                   help="the Python that has PyTorch, e.g. a venv of its own (default: this one)")
    add_json_argument(p)
    args = p.parse_args()
    if "torch" in args.sides:
        require_torch(p, args.torch_python)
    from paddle_resnet.config import load_config
    cfg = load_config(args.config, [])
    if args.twin_bn_split < 1 or cfg["train.batch_size"] % args.twin_bn_split:
        p.error(f"--twin-bn-split {args.twin_bn_split} must be >= 1 and divide the config's "
                f"train.batch_size {cfg['train.batch_size']}")
    twin = "torch twin" + (f", BN over {cfg['train.batch_size'] // args.twin_bn_split}"
                           if args.twin_bn_split > 1 else "")
    runs = {label: [] for side, label in (("paddle", "paddle_resnet"), ("torch", twin))
            if side in args.sides}
    if twin in runs:  # refuse a recipe the twin lacks before any training, not after
        twin_args(cfg, args.epochs, args.seeds[0], args.data_file, args.twin_bn_split)
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:  # interleaved, so drift of the machine hits both sides
            if "paddle_resnet" in runs:
                runs["paddle_resnet"].append(run_paddle(args.config, args.epochs, seed,
                                                        args.data_file, work, args.nproc,
                                                        args.override))
            if twin in runs:
                runs[twin].append(run_torch(cfg, args.epochs, seed, args.data_file, work,
                                            args.twin_bn_split, args.torch_python))
            print(f"seed {seed}: " + ", ".join(f"{side} {r[-1]['test_top1']:.2f}%"
                                               for side, r in runs.items()),
                  file=sys.stderr, flush=True)
    print(f"\n| {cfg['model.name']}, {args.config}, {args.epochs} epochs, all 50,000 images, "
          f"seeds {', '.join(map(str, args.seeds))} | test top-1 per seed | mean +- sd | "
          "train loss (mean) | minutes per run (mean) |")
    print("|---|---|---:|---:|---:|")
    means = {}
    for side, results in runs.items():
        top1 = [r["test_top1"] for r in results]
        means[side] = statistics.mean(top1)
        sd = statistics.stdev(top1) if len(top1) > 1 else 0.0
        print(f"| {side} | {', '.join(f'{t:.2f}' for t in top1)} | {means[side]:.2f} +- "
              f"{sd:.2f} | {statistics.mean(r['train_loss'] for r in results):.4f} | "
              f"{statistics.mean(r['seconds'] for r in results) / 60:.1f} |")
    difference = means["paddle_resnet"] - means[twin] if len(means) == 2 else None
    if difference is not None:
        print(f"\ndifference of the means (paddle_resnet - torch): {difference:+.2f} pt")
    write_json(args.json, {"config": args.config, "data_file": os.path.basename(args.data_file),
                           "epochs": args.epochs, "seeds": args.seeds,
                           "nproc": args.nproc, "overrides": args.override,
                           "twin_bn_split": args.twin_bn_split, "runs": runs,
                           "difference": difference})


if __name__ == "__main__":
    main()
