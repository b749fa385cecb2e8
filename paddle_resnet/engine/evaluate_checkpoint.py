"""`tools/eval.py`: evaluate a trained checkpoint and report per-class results."""
import json
import os
from typing import Optional, Sequence

import numpy as np

from ..checkpoint import load_trained_model
from ..data import MEAN_STD, BatchLoader, class_names
from ..data.cifar import load_split, subset
from ..inference import cpu_threads
from .eval_batch import eval_batch_size
from .eval_engine import eval_forward
from .evaluator import evaluate


def format_report(result, names, header: str) -> str:
    lines = [header,
             f"loss {result['loss']:.4f}  top1 {result['top1']:.2f}%  top5 {result['top5']:.2f}%"
             f"  ({result['samples']:,} images)", "", "per-class top-1:"]
    for name, accuracy in zip(names, result["per_class_top1"]):
        lines.append(f"  {name:>12}  {accuracy:6.2f}%")
    if len(names) <= 20:
        width = max(6, len(str(result["confusion"].max())) + 1)
        lines += ["", "confusion matrix (rows: true class, columns: predicted):",
                  " " * 14 + "".join(f"{n[:width - 1]:>{width}}" for n in names)]
        for name, row in zip(names, result["confusion"]):
            lines.append(f"  {name:>12}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def plot_confusion(confusion: np.ndarray, names, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    size = max(6, len(names) * 0.6)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    if len(names) <= 20:
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_checkpoint(config_path: Optional[str], overrides: Sequence[str], weights: str,
                        split: str, out_dir: str) -> dict:
    model, cfg, progress, place = load_trained_model(weights, config_path, overrides)
    data = load_split(cfg["data.dataset"], split, cfg["data.data_file"])
    if split == "test":
        data = subset(data, cfg["data.test_samples"], salt=1)
    batch = eval_batch_size(cfg["eval.batch_size"], 1, place, model)
    loader = BatchLoader(data, batch, *MEAN_STD[cfg["data.dataset"]])
    num_classes = cfg["model.num_classes"]
    engine = cfg["eval.engine"]
    with eval_forward(model, engine, place, cpu_threads(cfg["eval.threads"]),
                      cfg["eval.precision"], tta=cfg["eval.tta"]) as forward:
        result = evaluate(model, loader, num_classes, with_confusion=True, forward=forward)
    names = class_names(cfg["data.dataset"], num_classes)
    best = progress.get("best_top1")
    partial = progress.get("batch_index", 0)
    header = (f"{weights}: {cfg['model.name']} trained {progress.get('epoch', '?')} epoch(s)"
              + (f" and {partial} iteration(s) of the next (interrupted)" if partial else "")
              + (f", best top-1 {best:.2f}% at epoch {progress.get('best_epoch')}"
                 if best is not None else "")
              + f"; evaluated on {split} ({place}, eval.engine={engine}, "
                 f"{cfg['eval.precision']}"
              + (f", eval.tta={cfg['eval.tta']}" if cfg["eval.tta"] != "none" else "")
              + f", batches of {batch})")
    print(format_report(result, names, header))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(weights))[0]
    plot_path = os.path.join(out_dir, f"confusion_{stem}_{split}.png")
    plot_confusion(result["confusion"], names, plot_path,
                   f"{cfg['model.name']} on {cfg['data.dataset']} {split}: "
                   f"top-1 {result['top1']:.2f}%")
    report = {"checkpoint": weights, "model": cfg["model.name"], "split": split,
              "epoch": progress.get("epoch"), "loss": result["loss"], "top1": result["top1"],
              "top5": result["top5"], "samples": result["samples"],
              "per_class_top1": dict(zip(names, map(float, result["per_class_top1"]))),
              "confusion": result["confusion"].tolist()}
    json_path = os.path.join(out_dir, f"eval_{stem}_{split}.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {plot_path} and {json_path}")
    return report
