"""What a run says about itself before its first step: a few lines for the console and
`train.log` (the full config is in `config.yaml`), and the `run` record of
`metrics.jsonl` that tools/compare.py reads back."""
import os
import platform
import re
import subprocess
from typing import Any, Dict, List, Optional

from ..config import Config
from ..device import Processes, describe
from ..launch import MIN_IMAGES_PER_PROCESS
from ..models import count_flops, count_parameters, model_info
from .build import TrainingParts
from .progress import Progress
from .rundir import write_config
from .runlog import read_metrics

# The command the user typed, set by tools/train.py for its workers (which get it without
# --nproc) and kept in the run record, so that tools/release.py can say how a run was made.
COMMAND_VARIABLE = "PADDLE_RESNET_COMMAND"
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What VisualDL's hyper-parameter page shows of a run.
HPARAM_KEYS = ("model.name", "data.dataset", "data.augment", "train.epochs", "train.batch_size",
               "optimizer.name", "optimizer.lr", "optimizer.weight_decay", "schedule.name",
               "seed")


def announce(log, vdl, cfg: Config, parts: TrainingParts, procs: Processes, progress: Progress,
             resumed_from: Optional[str], resume_note: Optional[str]) -> None:
    """config.yaml, the header lines, and the run record (or, resumed, the VisualDL curves
    so far), on rank 0."""
    write_config(cfg["output_dir"], cfg)
    for line in header_lines(cfg, parts, procs, progress, resumed_from, resume_note):
        log.info(line)
    if resumed_from:
        vdl.replay(read_metrics(cfg["output_dir"]), parts.eval_name)
    else:
        log.record(run_record(cfg, parts, procs))
    vdl.hparams({key: cfg[key] for key in HPARAM_KEYS}, ["eval/top1", "eval/loss", "train/loss"])


def header_lines(cfg: Config, parts: TrainingParts, procs: Processes, progress: Progress,
                 resumed_from: Optional[str], resume_note: Optional[str]) -> List[str]:
    first = describe(parts.place, procs.world)
    if procs.distributed:
        first += ("; gradients averaged through shared memory" if procs.host is not None
                  else "; gradients averaged by DataParallel")
    lines = [first, parts.speed.describe()]
    for note in (parts.speed.note, parts.exchange_note, small_share_note(cfg, procs)):
        if note:
            lines.append(f"note: {note}")
    if resumed_from:
        lines.append(f"resumed from {resumed_from} at epoch {progress.current}, iteration "
                     f"{progress.batch_index}, global step {progress.global_step}")
        if resume_note:
            lines.append(f"note: {resume_note}")
    train, batch = parts.train_loader, parts.train_loader.batch_size
    lines.append(
        f"model {cfg['model.name']} ({count_parameters(parts.model):,} parameters) on "
        f"{parts.place}; {train.num_samples:,} training images per epoch in {len(train)} "
        f"iterations of {batch}"
        + (f" (global batch = {procs.world} processes x {batch // procs.world})"
           if procs.distributed else "")
        + f"; {len(parts.eval_loader.split):,} {parts.eval_name} images")
    lines.append(f"recipe: {recipe(cfg)}; output and full config in {cfg['output_dir']}")
    return lines


def small_share_note(cfg: Config, procs: Processes) -> Optional[str]:
    """Where `--nproc N` left each process fewer images of the batch than `--nproc auto`
    would: what that does to BatchNorm, which each process applies to its share alone."""
    share = cfg["train.batch_size"] // procs.world
    if not procs.distributed or cfg["dist.sync_bn"] or share >= MIN_IMAGES_PER_PROCESS:
        return None
    return (f"each of the {procs.world} processes normalises BatchNorm over its {share} "
            f"image{'s' if share > 1 else ''} of the batch, whose statistics get noisy below "
            f"{MIN_IMAGES_PER_PROCESS} "
            f"(docs/distributed.md); --nproc auto keeps {MIN_IMAGES_PER_PROCESS} or more")


def source_commit() -> Optional[str]:
    """The package's git commit (`+changes` when its tracked files differ from it), the
    commit a `git archive` snapshot of it was made from (`(archive)`: changes made to the
    copy since cannot be seen), or None elsewhere (an install in site-packages may sit
    inside some other repository, whose commit would say nothing about this code)."""
    if not os.path.exists(os.path.join(PACKAGE_ROOT, ".git")):
        return archived_commit()

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", PACKAGE_ROOT, *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=7", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if changed else "")


def archived_commit() -> Optional[str]:
    # setuptools-scm's convention: .gitattributes marks the stamp export-subst, so
    # `git archive` replaces its placeholder with the commit; a plain copy keeps it.
    try:
        with open(os.path.join(PACKAGE_ROOT, ".git_archival.txt")) as stamp:
            fields = dict(line.split(": ", 1) for line in stamp.read().splitlines()
                          if ": " in line)
    except OSError:
        return None
    node = fields.get("node", "")
    if not re.fullmatch(r"[0-9a-f]{40}", node):
        return None
    return f"{node[:7]} (archive)"


def run_record(cfg: Config, parts: TrainingParts, procs: Processes) -> Dict[str, Any]:
    import paddle
    return {"kind": "run", "global_step": 0, "model": cfg["model.name"],
            "family": model_info(cfg["model.name"]).family,
            "params": count_parameters(parts.model), "flops": count_flops(parts.model),
            "device": parts.place, "train_images": parts.train_loader.num_samples,
            "eval_images": len(parts.eval_loader.split), "eval_split": parts.eval_name,
            "epochs": cfg["train.epochs"], "batch_size": cfg["train.batch_size"],
            "processes": procs.world, "hardware": describe(parts.place, procs.world),
            "speed": parts.speed.describe(), "command": os.environ.get(COMMAND_VARIABLE),
            "commit": source_commit(), "paddle": paddle.__version__,
            "python": platform.python_version()}


def recipe(cfg: Config) -> str:
    """The training recipe in one line."""
    optimizer = f"{cfg['optimizer.name']} lr {cfg['optimizer.lr']:g}"
    if cfg["optimizer.name"] == "sgd":
        optimizer += f" momentum {cfg['optimizer.momentum']:g}"
    optimizer += f" wd {cfg['optimizer.weight_decay']:g}"
    schedule = cfg["schedule.name"]
    if schedule == "multistep":
        schedule += (f" x{cfg['schedule.gamma']:g} at "
                     + ", ".join(f"{m:.0%}" for m in cfg["schedule.milestones"])
                     + " of the run")
    if cfg["schedule.warmup_epochs"]:
        schedule += f", {cfg['schedule.warmup_epochs']:g} warm-up epochs"
    epochs = cfg["train.epochs"]
    return (f"{epochs} epoch{'s' if epochs > 1 else ''} of batch {cfg['train.batch_size']}, "
            f"{optimizer}, {schedule}, augment {cfg['data.augment']}"
            + (", flips alternating" if cfg["data.flip"] == "alternating" else "")
            + f", seed {cfg['seed']}"
            + (f"; evaluated with eval.tta={cfg['eval.tta']}" if cfg["eval.tta"] != "none"
               else ""))
