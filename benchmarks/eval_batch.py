"""Evaluation speed per eval batch, as a user meets it: `tools/eval.py` on a checkpoint,
timed from outside.

    python benchmarks/eval_batch.py --data-file ../shared/data/cifar10-lossless.tar.xz

For each model a checkpoint is trained first (one epoch of 256 images: its weights do not
change the time). Then for each eval batch (`eval.batch_size`; 0 = the package's choice,
paddle_resnet/engine/eval_batch.py) tools/eval.py runs twice, on `--small` and on
`--large` test images; the difference of the wall times is the time of the extra images
only (start-up, loading and the export to Paddle Inference cancel out; from_outside.py).
Batches are interleaved over repeats; each run is a fresh process.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from from_outside import rate_of_difference
from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"resnet20": "configs/quickstart.yaml", "resnet18": "configs/resnet18.yaml",
           "densenet40_k12": "configs/densenet40.yaml"}


def run(args, what: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: {what} failed:\n{done.stderr[-2000:]}")
    return seconds


def checkpoint(model: str, data_file: str, work: str) -> str:
    out = os.path.join(work, model)
    run([sys.executable, "tools/train.py", "-c", CONFIGS.get(model, "configs/quickstart.yaml"),
         "-o", f"model.name={model}", "-o", f"data.data_file={data_file}",
         "-o", "data.train_samples=256", "-o", "data.test_samples=256", "-o", "train.epochs=1",
         "-o", f"output_dir={out}"], f"training {model}'s checkpoint")
    return os.path.join(out, "latest.pdckpt")


def eval_seconds(weights: str, data_file: str, images: int, batch: int) -> float:
    return run([sys.executable, "tools/eval.py", "-w", weights,
                "-o", f"data.data_file={data_file}", "-o", f"data.test_samples={images}",
                "-o", f"eval.batch_size={batch}", "--out", os.path.dirname(weights)],
               f"evaluating {weights} at eval.batch_size={batch}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", required=True, help="the CIFAR-10 archive")
    p.add_argument("--models", nargs="+", default=["densenet40_k12", "resnet18", "resnet20"])
    p.add_argument("--batches", nargs="+", type=int, default=[0, 256, 64, 32, 16],
                   help="eval.batch_size values (0 = the package's choice)")
    p.add_argument("--small", type=int, default=200)
    p.add_argument("--large", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=2)
    add_json_argument(p)
    args = p.parse_args()
    if not os.path.isfile(args.data_file):
        p.error(f"--data-file {args.data_file} does not exist")
    if not 0 < args.small < args.large:
        p.error(f"--small {args.small} and --large {args.large}: need 0 < small < large")
    if args.repeats < 1 or any(b < 0 for b in args.batches):
        p.error("--repeats must be at least 1 and --batches at least 0")
    data_file = os.path.abspath(args.data_file)
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval_batch_") as work:
        for model in args.models:
            weights = checkpoint(model, data_file, work)
            eval_seconds(weights, data_file, args.small, 0)  # untimed: caches, first imports
            rates = {batch: [] for batch in args.batches}
            for _ in range(args.repeats):
                for batch in args.batches:
                    rates[batch].append(rate_of_difference(
                        f"{model} eval.batch_size={batch}", args.small, args.large,
                        lambda n: eval_seconds(weights, data_file, n, batch)))
            base = statistics.median(rates[args.batches[0]])
            for batch, values in rates.items():
                rows.append({"model": model, "eval_batch_size": batch,
                             "images_per_s": statistics.median(values), "runs": values,
                             "vs_first": statistics.median(values) / base})
    print(f"\n| model | eval.batch_size | images/s (median of {args.repeats}) | runs | "
          f"vs eval.batch_size={args.batches[0]} |")
    print("|---|---:|---:|---|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['eval_batch_size']} | {row['images_per_s']:,.1f} | "
              f"{', '.join(f'{r:.0f}' for r in row['runs'])} | {row['vs_first']:.2f}x |")
    write_json(args.json, {"cpu_count": os.cpu_count(), "small": args.small,
                           "large": args.large, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
