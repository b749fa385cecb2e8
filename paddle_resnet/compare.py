"""`tools/compare.py`: runs side by side, as a markdown table and PNG plots, read back from
each run's `metrics.jsonl` and `config.yaml`."""
import glob
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from .console import format_duration
from .engine.runlog import METRICS_FILE, read_metrics
from .errors import UserError


def find_runs(patterns: Sequence[str]) -> List[str]:
    """Run directories from paths and globs; a folder of runs stands for its runs."""
    runs = []
    for pattern in patterns:
        is_glob = glob.has_magic(pattern)
        for path in sorted(glob.glob(pattern)) if is_glob else [pattern]:
            if os.path.isfile(os.path.join(path, METRICS_FILE)):
                runs.append(path)
                continue
            nested = sorted(os.path.dirname(p) for p in
                            glob.glob(os.path.join(path, "*", METRICS_FILE)))
            if nested or is_glob:
                runs += nested
            elif os.path.isdir(path):
                raise UserError(f"{path} holds no run (no {METRICS_FILE}); pass run "
                                "directories written by tools/train.py")
            else:
                raise UserError(f"{path} does not exist; pass run directories (or a glob "
                                "such as 'output/*')")
    if not runs:
        raise UserError(f"no runs found in {' '.join(patterns)}; pass run directories "
                        "written by tools/train.py")
    return list(dict.fromkeys(runs))


def summarize_run(path: str, records: Optional[List[Dict]] = None) -> Dict:
    """The table row and curves of the run in `path`; `records`: its metrics.jsonl,
    when the caller has read them already."""
    if records is None:
        try:
            records = read_metrics(path)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {os.path.join(path, METRICS_FILE)}: {e}") from None
    config_path = os.path.join(path, "config.yaml")
    config = {}
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    run = next((r for r in records if r.get("kind") == "run"), {})
    epochs = [r for r in records if r.get("kind") == "epoch"]
    iters = [r for r in records if r.get("kind") == "train_iter"]
    split = run.get("eval_split", "test")
    evaluated = [r for r in epochs if f"{split}_top1" in r]
    label = os.path.basename(os.path.normpath(path))
    # Logged steps placed in epochs (epoch 1.5 = half-way through the second), so that
    # short runs with a single epoch still show a curve.
    steps_per_epoch = (run["train_images"] // run["batch_size"]
                       if run.get("train_images") and run.get("batch_size") else None)
    logged = iters if steps_per_epoch else []
    return {
        "run": label, "path": path,
        "model": run.get("model") or config.get("model", {}).get("name", "?"),
        "family": run.get("family"),
        "params": run.get("params"), "flops": run.get("flops"), "split": split,
        # Two views score higher than one: a table must not set them side by side unmarked.
        "tta": config.get("eval", {}).get("tta", "none"),
        "epochs_done": len(epochs),
        "epochs_planned": config.get("train", {}).get("epochs", run.get("epochs")),
        "best_top1": max((r[f"{split}_top1"] for r in evaluated), default=None),
        "final_top1": evaluated[-1][f"{split}_top1"] if evaluated else None,
        "final_train_error": 100 - epochs[-1]["train_top1"] if epochs else None,
        "wall_time": epochs[-1]["elapsed"] if epochs else None,
        "ips": float(np.median([r["ips"] for r in iters])) if iters else None,
        "curves": {
            "epoch": [r["epoch"] for r in epochs],
            "train_loss": [r["train_loss"] for r in epochs],
            "train_error": [100 - r["train_top1"] for r in epochs],
            "eval_epoch": [r["epoch"] for r in evaluated],
            "eval_top1": [r[f"{split}_top1"] for r in evaluated],
            "eval_error": [100 - r[f"{split}_top1"] for r in evaluated],
            "step_epoch": [r["epoch"] - 1 + r["iter"] / steps_per_epoch for r in logged],
            "step_loss": [r["loss"] for r in logged],
            # The epoch's running averages so far: what a one-epoch run has for a curve.
            "step_avg_loss": [r["avg_loss"] for r in logged],
            "step_train_error": [100 - r["top1"] for r in logged],
        },
    }


# Below this many finished epochs, per-epoch curves are a dot or two: the training
# curves are drawn from the logged iterations instead.
FEW_EPOCHS = 3


def _few_epochs(runs: List[Dict]) -> bool:
    return max(r["epochs_done"] for r in runs) < FEW_EPOCHS


def _has_data(r: Dict) -> bool:
    return bool(r["curves"]["epoch"] or r["curves"]["step_epoch"])


def _fmt(value, pattern="{:.2f}", missing="–"):
    return missing if value is None else pattern.format(value)


def markdown_table(runs: List[Dict]) -> str:
    lines = ["| run | model | parameters | FLOPs | epochs | best top-1 | final top-1 | "
             "final train error | wall time | images/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        marks = ([] if r["split"] == "test" else [r["split"]]) + (
            [] if r.get("tta", "none") == "none" else [f"eval.tta={r['tta']}"])
        split = f" ({', '.join(marks)})" if marks else ""
        lines.append(
            f"| {r['run']} | {r['model']} | {_fmt(r['params'], '{:,}')} | "
            f"{_fmt(r['flops'] and r['flops'] / 1e6, '{:.1f}M')} | "
            f"{r['epochs_done']}/{_fmt(r['epochs_planned'], '{}')}"
            f"{'' if _has_data(r) else ' (no data yet)'} | "
            f"{_fmt(r['best_top1'], '{:.2f}%')}{split} | {_fmt(r['final_top1'], '{:.2f}%')} | "
            f"{_fmt(r['final_train_error'], '{:.2f}%')} | "
            f"{format_duration(r['wall_time']) if r['wall_time'] is not None else '–'} | "
            f"{_fmt(r['ips'], '{:.1f}')} |")
    return "\n".join(lines)


PLOTS = {
    "test_top1.png": ("eval_epoch", "eval_top1", "test top-1 accuracy (%)",
                      "Test top-1 accuracy per epoch"),
    "train_loss.png": ("epoch", "train_loss", "training loss (cross-entropy)",
                       "Training loss per epoch"),
    "train_error.png": ("epoch", "train_error", "training error (%)",
                        "Training error per epoch (He et al. Fig. 6: plain vs residual)"),
    "train_loss_steps.png": ("step_epoch", "step_loss", "training loss of the step",
                             "Training loss at every logged step"),
}
# What the per-epoch training curves become for short runs (FEW_EPOCHS): the running
# averages at every logged step, placed at fractional epochs.
STEP_CURVES = {"train_loss": "step_avg_loss", "train_error": "step_train_error"}
STEP_CURVE_NOTE = "(running average within the epoch)"


def _axes_in_epochs(ax, runs: List[Dict]) -> None:
    """Whole-epoch ticks from 0, also for a run with one point (whose automatic range,
    0.95 to 1.05, holds no whole number)."""
    from matplotlib.ticker import MaxNLocator
    last = max([1] + [x for r in runs for key in ("epoch", "step_epoch")
                      for x in r["curves"][key]])
    ax.set_xlim(0, last * 1.04)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _training_curve(r: Dict, y_key: str, few: bool):
    """x, y of a per-epoch training curve; from the logged steps for short runs."""
    if few and y_key in STEP_CURVES:
        return r["curves"]["step_epoch"], r["curves"][STEP_CURVES[y_key]]
    return r["curves"]["epoch"], r["curves"][y_key]


def plot_runs(runs: List[Dict], out_dir: str) -> List[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    few = _few_epochs(runs)
    for filename, (x_key, y_key, ylabel, title) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in runs:
            if x_key == "epoch":
                x, y = _training_curve(r, y_key, few)
            else:
                x, y = r["curves"][x_key], r["curves"][y_key]
            if not x:
                continue
            # Plain nets dashed, as in the paper's figure; residual and others solid.
            style = "--" if r["model"].startswith("plain") else "-"
            label = r["run"] if r["run"] == r["model"] else f"{r['run']} ({r['model']})"
            ax.plot(x, y, style, marker="o", markersize=3, label=label)
        if few and x_key == "epoch":
            title = f"{title.replace('per epoch', 'at every logged step')} {STEP_CURVE_NOTE}"
        _axes_in_epochs(ax, runs)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, filename)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


# At most this many families (plain, resnet, densenet) get a panel each in plot_errors.
MAX_PANELS = 3
PANEL_TITLES = {"plain": "plain networks", "resnet": "ResNets", "densenet": "DenseNets"}


def error_panels(runs: List[Dict]) -> List[Tuple[Optional[str], List[Dict]]]:
    """(family, its runs) per panel of plot_errors: one per model family, as He et al.'s
    Fig. 6 puts plain nets left and ResNets right, when the runs span 2-3 families and
    every run's record names its family (runs from before 2026-12-01 do not); else one
    panel of all the runs."""
    families = list(dict.fromkeys(r["family"] for r in runs))
    if None in families or not 2 <= len(families) <= MAX_PANELS:
        return [(None, runs)]
    return [(family, [r for r in runs if r["family"] == family]) for family in families]


def plot_errors(runs: List[Dict], out_dir: str, name: str = "train_test_error.png") -> str:
    """Training (thin, dashed) and test (bold) error of every run, as in He et al.
    Fig. 6: a panel per model family, sharing the error axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = error_panels(runs)
    fig, axes = plt.subplots(1, len(panels), figsize=(2 + 5 * len(panels), 4.5), sharey=True,
                             squeeze=False)
    few = _few_epochs(runs)
    for ax, (family, members) in zip(axes[0], panels):
        # Colours restart in each panel, so that the n-th run of each family (plain-20 and
        # ResNet-20) share one, as in the paper's figure.
        colors = {r["run"]: f"C{index % 10}" for index, r in enumerate(members)}
        for r in members:
            curves = r["curves"]
            x, y = _training_curve(r, "train_error", few)
            if x:  # markers: a single point of a dashed line would draw nothing
                ax.plot(x, y, "--", color=colors[r["run"]], linewidth=1, marker=".",
                        markersize=4, label=f"{r['run']} train")
            if curves["eval_epoch"]:
                ax.plot(curves["eval_epoch"], curves["eval_error"], "-",
                        color=colors[r["run"]], linewidth=2.5, marker="o", markersize=5,
                        label=f"{r['run']} test")
        _axes_in_epochs(ax, runs)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        if family is not None:
            ax.set_title(PANEL_TITLES.get(family, family))
    axes[0][0].set_ylabel("error (%)")
    title = "Training error (dashed) and test error (bold)"
    if len(panels) == 1:
        axes[0][0].set_title(title)
    else:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def default_out_dir(run_paths: Sequence[str]) -> str:
    """`comparison/` beside the runs: in the folder that holds them all."""
    parents = [os.path.dirname(os.path.abspath(p)) for p in run_paths]
    return os.path.join(os.path.commonpath(parents), "comparison")


def compare(patterns: Sequence[str], out_dir: Optional[str] = None) -> str:
    paths = find_runs(patterns)
    runs = [summarize_run(path) for path in paths]
    out_dir = out_dir or default_out_dir(paths)
    os.makedirs(out_dir, exist_ok=True)
    table = markdown_table(runs)
    table_path = os.path.join(out_dir, "comparison.md")
    with open(table_path, "w", encoding="utf-8") as f:
        f.write(table + "\n")
    plots = plot_runs(runs, out_dir) + [plot_errors(runs, out_dir)]
    print(table)
    empty = [r["run"] for r in runs if not _has_data(r)]
    if empty:
        print(f"\nno finished epoch or logged step yet, so not in the plots: "
              f"{', '.join(empty)}")
    print(f"\nwrote {table_path} and {', '.join(plots)}")
    return table
