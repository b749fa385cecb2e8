"""`tools/release.py`: a finished run turned into a checkpoint to ship. The checkpoint keeps
only the weights, config and progress. It is evaluated on the full test set, and a model
card is written beside it: how it was made (command, commit, data, hardware, software,
wall time, the curve) and what it scores. Every number on the card is read from the run
or measured by this command."""
import datetime
import bz2
import gzip
import hashlib
import lzma
import os
import re
from typing import Dict, List, Optional, Sequence

from . import checkpoint as ckpt
from .compare import plot_errors, summarize_run
from .config import load_config
from .data.cifar import ARCHIVE_NAMES, default_archive, resolve_archive
from .engine.header import recipe
from .console import format_duration
from .engine.runlog import read_metrics
from .errors import UserError

SHIPPED_KEYS = ("model", "config", "progress")  # evaluates and predicts; does not resume
TIMESTAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\]")


def sha256_of(path: str, opener=open) -> str:
    digest = hashlib.sha256()
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_dates(run_dir: str) -> Optional[str]:
    """First and last timestamps of the run's train.log (UTC, as the log writes them)."""
    path = os.path.join(run_dir, "train.log")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        stamps = [m.group(1) for m in map(TIMESTAMP.match, f) if m]
    return f"{stamps[0]} to {stamps[-1]} UTC" if stamps else None


def _finished(run_dir: str, state: Dict, records: List[Dict]) -> None:
    planned = state["config"]["train"]["epochs"]
    progress = state.get("progress", {})
    done = [r for r in records if r.get("kind") == "epoch"]
    if progress.get("batch_index") or len(done) < planned:
        raise UserError(f"{run_dir} has finished {len(done)} of its {planned} epochs; "
                        "release a finished run (continue this one with tools/train.py "
                        "... --resume)")


def release(run_dir: str, out: str, which: str = "latest", overrides: Sequence[str] = (),
            commit: Optional[str] = None, command: Optional[str] = None) -> str:
    """Writes `out` (.pdckpt), its model card `<stem>.md`, its curve `<stem>_curve.png`
    and the evaluation's json and confusion plot beside it; returns the card's path."""
    from .engine.evaluate_checkpoint import evaluate_checkpoint
    source = ckpt.checkpoint_path(run_dir, which)
    if not os.path.isfile(source):
        raise UserError(f"{source} does not exist; pass the run's directory (it holds "
                        "latest.pdckpt and metrics.jsonl) and --checkpoint latest or best")
    if os.path.exists(out):
        raise UserError(f"{out} exists; pass another --out or remove it first")
    folder = os.path.dirname(os.path.abspath(out))
    stem = os.path.splitext(os.path.basename(out))[0]
    records = read_metrics(run_dir)
    state = ckpt.load_checkpoint(source)
    _finished(run_dir, state, records)
    # The card's number is on the whole test set, whatever subset the run evaluated on.
    overrides = ("data.test_samples=null", *overrides)
    cfg = load_config(base=state["config"], overrides=overrides)
    resolve_archive(cfg["data.dataset"], cfg["data.data_file"])  # before anything is written
    os.makedirs(folder, exist_ok=True)
    card = os.path.join(folder, f"{stem}.md")
    ckpt.save_checkpoint(out, {key: state[key] for key in SHIPPED_KEYS})
    try:
        report = evaluate_checkpoint(None, overrides, out, "test", folder)
        summary = summarize_run(run_dir, records)
        summary["run"] = stem
        curve = plot_errors([summary], folder, name=f"{stem}_curve.png")
        text = model_card(run_dir, out, which, cfg, state, records, report,
                          os.path.basename(curve), commit, command)
    except BaseException:
        os.remove(out)  # a checkpoint without its card is not a release; re-running works
        raise
    with open(card, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {out}, {card} and {curve}")
    return card


# Every compression tarfile (and so paddle.vision.datasets) reads, by its magic bytes, with
# the command that shows the same decompressed bytes.
DECOMPRESSORS = ((b"\x1f\x8b", gzip.open, "gzip -dc"), (b"\xfd7zXZ\x00", lzma.open, "xz -dc"),
                 (b"BZh", bz2.open, "bzip2 -dc"))


def _decompressed_sha256(archive: str):
    """(sha256 of the tar inside `archive`, the shell command that reproduces it)."""
    with open(archive, "rb") as f:
        magic = f.read(6)
    for prefix, opener, command in DECOMPRESSORS:
        if magic.startswith(prefix):
            return sha256_of(archive, opener), f"{command} ARCHIVE | sha256sum"
    return sha256_of(archive), "sha256sum ARCHIVE"


def _data_row(cfg) -> str:
    archive = cfg["data.data_file"] or default_archive(cfg["data.dataset"])
    content, command = _decompressed_sha256(archive)
    official = ARCHIVE_NAMES[cfg["data.dataset"]]
    name = os.path.basename(archive)
    # Compressors may stamp a build time into the archive, so its contents identify it.
    return (f"`{name}`" + ("" if name == official else f" (the layout of {official})")
            + f"; sha256 of its tar `{content}` (`{command}`)")


def model_card(run_dir: str, out: str, which: str, cfg, state: Dict, records: List[Dict],
               report: Dict, curve: str, commit: Optional[str], command: Optional[str]) -> str:
    run = next((r for r in records if r.get("kind") == "run"), {})
    epochs = [r for r in records if r.get("kind") == "epoch"]
    progress = state["progress"]
    shipped = next(r for r in epochs if r["epoch"] == progress["epoch"])
    split = run.get("eval_split", "test")
    last = epochs[-1]
    best = (f"{progress['best_top1']:.2f}% at epoch {progress['best_epoch']}"
            if progress.get("best_top1") is not None else "not evaluated")
    chosen = ("the last epoch's" if which == "latest" else
              "the best epoch's (chosen on the test set, so its number is optimistic)")
    not_recorded = "not recorded by the run"
    rows = [
        (f"test top-1 / top-5 / loss, {report['samples']:,} test images",
         f"**{report['top1']:.2f}%** / {report['top5']:.2f}% / {report['loss']:.4f} "
         f"(this command, `eval.engine={cfg['eval.engine']}`, {cfg['eval.precision']}, "
         f"`eval.tta={cfg['eval.tta']}`)"),
        ("the same epoch, as the run measured it",
         f"{shipped[f'{split}_top1']:.2f}% on {run.get('eval_images', '?'):,} {split} images"
         if f"{split}_top1" in shipped else "not evaluated in the run"),
        ("weights", f"{chosen}: epoch {progress['epoch']} of {len(epochs)}, global step "
                    f"{progress['global_step']:,}; the run's best: {best}"),
        ("train top-1 that epoch (augmented images)", f"{shipped['train_top1']:.2f}%"),
        ("recipe", recipe(cfg)),
        ("training images per epoch", f"{run.get('train_images', '?'):,}"),
        ("wall time", f"{format_duration(last['elapsed'])} (training and every evaluation, "
                      f"summed over resumes; {_training_time(epochs)} of it in training "
                      "epochs)"),
        ("dates", _run_dates(run_dir) or not_recorded),
        ("hardware", "; ".join(filter(None, [run.get("hardware", not_recorded),
                                             run.get("speed")]))),
        ("software", f"Paddle {run['paddle']}, Python {run['python']}" if "paddle" in run
         else _software_now() + " (at release; the run did not record its own)"),
        ("code", f"commit `{run.get('commit') or commit}`" if run.get("commit") or commit
         else not_recorded),
        ("command", f"`{run.get('command') or command}`" if run.get("command") or command
         else not_recorded),
        ("data", _data_row(cfg)),
        ("this file", f"`{os.path.basename(out)}`, {os.path.getsize(out):,} bytes, sha256 "
                      f"`{sha256_of(out)}`; {', '.join(SHIPPED_KEYS)} only (it evaluates and "
                      "predicts, it does not resume)"),
        ("released", f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
                     f"from `{os.path.abspath(run_dir)}`"),
    ]
    lines = [f"# {cfg['model.name']} on {cfg['data.dataset']}: `{os.path.basename(out)}`", "",
             "| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows]
    lines += ["", f"![training error (dashed) and test error (bold) per epoch]({curve})", "",
              "Per epoch (train error on augmented images; test error on the "
              f"{split} images):", "", "| epoch | lr | train error | test error |",
              "|---:|---:|---:|---:|"]
    for r in epochs:
        test = f"{100 - r[f'{split}_top1']:.2f}%" if f"{split}_top1" in r else "–"
        lines.append(f"| {r['epoch']} | {r['lr']:.4g} | {100 - r['train_top1']:.2f}% | {test} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A markdown table cell: a `|` inside it (a shell pipe) would split the row."""
    return text.replace("|", r"\|")


def _training_time(epochs: List[Dict]) -> str:
    return format_duration(sum(r["epoch_seconds"] for r in epochs))


def _software_now() -> str:
    import platform

    import paddle
    return f"Paddle {paddle.__version__}, Python {platform.python_version()}"
