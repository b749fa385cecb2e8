"""A run directory from a `torch_twin.py` run, so that `tools/compare.py` puts the twin
beside the package's runs (one table, one train/test error figure):

    python benchmarks/twin_run.py ~/runs/twin_paper.pt ~/runs/twin_paper   # or its --json
    python tools/compare.py ~/runs/resnet20_paper ~/runs/twin_paper --out docs/results/twin

It reads the epoch records from the twin's `--json` file or, while the twin is still
running, from its `--checkpoint` (torch is then imported to open it), and writes
`metrics.jsonl` (a "run" record and one "epoch" record per epoch, in the package's
format) and `config.yaml` (the twin's flags, in the package's keys where compare.py
reads them). The directory it writes is the twin's alone; it refuses to overwrite a
directory that holds a package run.
"""
import argparse
import json
import os
import pickle
import sys

import yaml

MARKER = "torch_twin"  # the "source" of the run record: a directory this script may rewrite


def read_twin(path):
    """(the twin's flags, its epoch records)."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        return saved["args"], saved["epochs"]
    import torch
    saved = torch.load(path, weights_only=False, map_location="cpu")
    return saved["args"], saved["records"]


def run_records(flags, epochs):
    steps = (flags.get("train_samples") or 50_000) // flags["batch_size"]  # last batch dropped
    run = {"kind": "run", "source": MARKER, "model": flags["model"], "family": "resnet",
           "batch_size": flags["batch_size"], "epochs": flags["epochs"],
           "train_images": steps * flags["batch_size"], "eval_split": "test",
           "global_step": 0, "hardware": "PyTorch twin (benchmarks/torch_twin.py)"}
    records = [run]
    for record in epochs:
        records.append({"kind": "epoch", "global_step": record["epoch"] * steps,
                        **{key: record[key] for key in ("epoch", "train_loss", "train_top1",
                                                        "test_loss", "test_top1", "elapsed")}})
    return records


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("twin", help="the twin's --json file or --checkpoint")
    p.add_argument("out", help="the run directory to write (compare.py names the run after it)")
    args = p.parse_args()
    if not os.path.isfile(args.twin):
        sys.exit(f"error: {args.twin} does not exist; pass torch_twin.py's --json or "
                 "--checkpoint file")
    metrics = os.path.join(args.out, "metrics.jsonl")
    if os.path.isfile(metrics):
        with open(metrics, encoding="utf-8") as f:
            first = json.loads(f.readline() or "{}")
        if first.get("source") != MARKER:
            sys.exit(f"error: {args.out} holds a run that is not a twin's; pass another "
                     "directory")
    try:
        flags, epochs = read_twin(args.twin)
    except (ValueError, KeyError, OSError, RuntimeError, pickle.UnpicklingError) as e:
        sys.exit(f"error: {args.twin} is not a torch_twin.py --json or --checkpoint file "
                 f"({type(e).__name__}: {e})")
    os.makedirs(args.out, exist_ok=True)
    with open(metrics + ".tmp", "w", encoding="utf-8") as f:
        for record in run_records(flags, epochs):
            f.write(json.dumps(record, sort_keys=True) + "\n")
    os.replace(metrics + ".tmp", metrics)
    config = {"model": {"name": flags["model"]}, "train": {"epochs": flags["epochs"],
                                                           "batch_size": flags["batch_size"]},
              "twin_flags": flags}
    with open(os.path.join(args.out, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    print(f"{args.out}: {len(epochs)} of {flags['epochs']} epochs of the twin")


if __name__ == "__main__":
    main()
