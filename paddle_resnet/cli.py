"""Command-line entry points shared by tools/*.py and the console scripts."""
import argparse
import os
import shlex
import sys
from typing import Callable, List, Optional

from .errors import ConfigError, ModelArgumentError, UserError
from .launch import (default_processes, die_with_launcher, parse_nproc, run_launcher,
                     under_launcher, under_parent)
from .paths import in_pretrained_dir
from .runtime import prepare_process


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other usage error here
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def parser(description: str) -> argparse.ArgumentParser:
    p = _Parser(description=description)
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def add_config_args(p: argparse.ArgumentParser, required: bool = True):
    p.add_argument("-c", "--config", required=required, help="yaml config (see configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. -o train.epochs=5 (repeatable)")


def run(main: Callable[[argparse.Namespace], Optional[int]], p: argparse.ArgumentParser,
        argv: Optional[List[str]] = None) -> int:
    """Parse, run, and turn user errors into one line on stderr with a non-zero exit."""
    args = p.parse_args(argv)
    prepare_process()  # before the commands import Paddle
    try:
        return main(args) or 0
    except UserError as e:
        if args.debug:
            raise
        if not getattr(e, "shown", False):  # e.g. an interrupt the run log has reported
            print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except ModelArgumentError as e:  # a model name or argument the zoo cannot build
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return ConfigError.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _without_nproc(argv: Optional[List[str]]) -> List[str]:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    return rest


def _train_script() -> str:
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "tools", "train.py")
    if not os.path.isfile(script):  # installed without the tools/ folder
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_entry.py")
    return script


def _resume_path(cfg, args) -> Optional[str]:
    from . import checkpoint as ckpt
    if args.resume == "":
        return ckpt.checkpoint_path(cfg["output_dir"], "latest")
    return args.resume


def _train(cfg, args) -> None:
    from .engine.trainer import Trainer
    Trainer(cfg, resume=_resume_path(cfg, args), overwrite=args.overwrite).fit()


def train_main(argv=None) -> int:
    p = parser("Train a model on CIFAR.")
    add_config_args(p)
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                   help="continue a run: from output_dir/latest.pdckpt, or CHECKPOINT")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished or abandoned run in output_dir")
    p.add_argument("--nproc", default="auto", metavar="N",
                   help="processes to train in, data-parallel through paddle.distributed."
                        "launch; auto (default) = one per CPU core on a CPU (the cores of its CPU "
                        "quota in a container), with at least 32 images of the batch each, 1 on "
                        "a GPU; train.batch_size stays the global batch")

    def main(args):
        from .config import load_config
        nproc = parse_nproc(args.nproc)
        if args.resume is not None and args.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other; pick one")
        cfg = load_config(args.config, args.override)  # fails fast, before launching
        from .engine.header import COMMAND_VARIABLE
        from .engine.rundir import RunDirLock, hold_as_worker
        if not under_parent():
            given = list(sys.argv[1:] if argv is None else argv)
            os.environ[COMMAND_VARIABLE] = "python tools/train.py " + shlex.join(given)
        if under_parent():
            if not die_with_launcher():
                return 1  # the run was stopped before this worker started
            hold_as_worker(cfg["output_dir"])
            return _train(cfg, args)
        if under_launcher():  # a launcher the user started: rank 0 holds the directory
            if os.environ.get("PADDLE_TRAINER_ID", "0") != "0":
                return _train(cfg, args)
        with RunDirLock(cfg["output_dir"]):
            if under_launcher():
                return _train(cfg, args)
            # What can fail does so in seconds, in this process (one exit status), before
            # a compile or a launch.
            from .engine.preflight import check_batch, preflight
            place = preflight(cfg, _resume_path(cfg, args), args.overwrite)
            if nproc is None:
                nproc = default_processes(place, cfg["train.batch_size"])
            check_batch(cfg["train.batch_size"], nproc, cfg["eval.batch_size"])
            if nproc > 1:
                # The workers would each compile a missing operator; the parent does it once.
                from .speed import plan_speed
                plan_speed(cfg, place, nproc)
                return run_launcher(nproc, _train_script(), _without_nproc(argv),
                                    cfg["output_dir"])
            return _train(cfg, args)

    return run(main, p, argv)


# A tool's default output never lands among the shipped checkpoints and their cards.
SHIPPED_EVAL_DIR = os.path.join("output", "eval")


def default_eval_dir(weights: str) -> str:
    return (SHIPPED_EVAL_DIR if in_pretrained_dir(weights)
            else os.path.dirname(os.path.abspath(weights)))


def eval_main(argv=None) -> int:
    p = parser("Evaluate a checkpoint: loss, top-1, top-5, per-class accuracy, confusion.")
    add_config_args(p, required=False)
    p.add_argument("-w", "--weights", required=True, metavar="CHECKPOINT",
                   help="a .pdckpt written by tools/train.py (e.g. output/resnet20/best.pdckpt)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--out", default=None,
                   help="where to write eval_<checkpoint>_<split>.json and its confusion plot "
                        f"(default: beside the checkpoint; {SHIPPED_EVAL_DIR} for the "
                        "checkpoints shipped in pretrained/)")

    def main(args):
        from .engine.evaluate_checkpoint import evaluate_checkpoint
        evaluate_checkpoint(args.config, args.override, args.weights, args.split,
                            args.out or default_eval_dir(args.weights))

    return run(main, p, argv)


def release_main(argv=None) -> int:
    p = parser("Turn a finished run into a checkpoint to ship: its weights evaluated on the "
               "test set, with a model card (command, commit, data, hardware, wall time, "
               "curve) beside it.")
    p.add_argument("run_dir", help="the run's output_dir (holds latest.pdckpt, metrics.jsonl)")
    p.add_argument("--out", required=True, metavar="PATH.pdckpt",
                   help="the checkpoint to write; <stem>.md and <stem>_curve.png go beside it")
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                   help="the last epoch's weights (default) or the best epoch's (chosen on "
                        "the evaluation split)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="for the evaluation, e.g. -o data.data_file=PATH")
    p.add_argument("--commit", default=None,
                   help="the code's commit, for runs whose record does not hold it")
    p.add_argument("--command", default=None,
                   help="the training command, for runs whose record does not hold it")

    def main(args):
        from .release import release
        release(args.run_dir, args.out, args.checkpoint, args.override, args.commit,
                args.command)

    return run(main, p, argv)


def summary_main(argv=None) -> int:
    p = parser("Parameters and FLOPs of every registered model.")
    p.add_argument("models", nargs="*", help="model names (default: all)")
    p.add_argument("--num-classes", type=int, default=10)

    def main(args):
        from .models.registry import get_builder
        from .models.summary import format_table, summarize
        for name in args.models:
            try:
                get_builder(name)
            except ModelArgumentError as e:
                raise ConfigError(str(e)) from None
        print(format_table(summarize(args.models or None, args.num_classes)))

    return run(main, p, argv)


def predict_main(argv=None) -> int:
    p = parser("Classify image files (any size; resized to 32x32) with a checkpoint or an "
               "exported model.")
    p.add_argument("paths", nargs="+", help="image files or folders of images")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("-w", "--weights", metavar="CHECKPOINT",
                        help="a .pdckpt written by tools/train.py")
    source.add_argument("-m", "--model", metavar="DIR",
                        help="a directory written by tools/export.py (Paddle Inference)")
    p.add_argument("-k", "--topk", type=int, default=3, help="classes to show per image")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the checkpoint's config, e.g. -o device=cpu")

    def main(args):
        from .prediction import predict
        if args.topk < 1:
            raise ConfigError(f"--topk {args.topk} must be at least 1")
        return predict(args.paths, args.weights, args.model, args.topk, args.json,
                       args.override)

    return run(main, p, argv)


def compare_main(argv=None) -> int:
    p = parser("Compare runs: a markdown table and plots from their metrics.jsonl.")
    p.add_argument("runs", nargs="+", help="run directories, globs ('output/*') or a folder "
                                           "of runs")
    p.add_argument("-o", "--out", default=None,
                   help="where to write comparison.md and the PNG plots (default: "
                        "comparison/ in the folder that holds the runs)")

    def main(args):
        from .compare import compare
        compare(args.runs, args.out)

    return run(main, p, argv)


def export_main(argv=None) -> int:
    p = parser("Export a checkpoint for Paddle Inference (paddle.jit.save) and, with "
               "--format onnx, for ONNX runtimes.")
    p.add_argument("-w", "--weights", required=True, metavar="CHECKPOINT",
                   help="a .pdckpt written by tools/train.py")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory for model.json, model.pdiparams, export.json "
                        "(and model.onnx)")
    add_config_args(p, required=False)
    p.add_argument("--format", choices=("paddle", "onnx"), default="paddle",
                   help="onnx: also model.onnx, through paddle2onnx (the [onnx] extra)")
    p.add_argument("--softmax", action="store_true",
                   help="end the exported model with a softmax (probabilities, not logits)")

    def main(args):
        from .export import export_model
        meta = export_model(args.weights, args.out, args.config, args.softmax, args.override,
                            args.format)
        files = ["model.json", "model.pdiparams", "export.json"] + (
            [meta["onnx"]] if "onnx" in meta else [])
        print(f"exported {meta['model']} (epoch {meta['epoch']}, {meta['output']}) to "
              f"{args.out}: {', '.join(files)}")

    return run(main, p, argv)
