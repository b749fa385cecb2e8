"""Rerun a results experiment with one command, then regenerate its table and figures.

    python tools/experiments.py degradation -o data.data_file=PATH [--root runs] [--out DIR]
    python tools/experiments.py notebook -o data.data_file=PATH   # Ctrl-C, rerun

Each experiment is a list of runs of tools/train.py (config + overrides); the runs go to
ROOT/EXPERIMENT/RUN and tools/compare.py's table and plots to OUT (default
docs/results/EXPERIMENT). Finished runs are skipped and interrupted ones resumed, so the
command can be repeated until everything is done.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from paddle_resnet.compare import compare  # noqa: E402
from paddle_resnet.engine.runlog import read_metrics  # noqa: E402

# One recipe and budget per experiment, so the runs inside it are comparable.
SHORT = ["data.augment=standard", "train.batch_size=128", "optimizer.name=sgd",
         "optimizer.lr=0.1", "schedule.name=onecycle", "log.histogram_every=0"]
EXPERIMENTS = {
    # He et al. Fig. 6 in miniature: deeper plain nets train worse, deeper ResNets better.
    "degradation": [
        (name, "configs/quickstart.yaml", SHORT + [
            f"model.name={name}", "data.train_samples=5000", "data.test_samples=2000",
            "train.epochs=3"])
        for name in ("resnet20", "plain20", "resnet56", "plain56")],
    # The same at full data: all 50,000 images, configs/resnet20_onecycle.yaml's recipe
    # (one-cycle compressed into 5 epochs), every net the same budget; the 56-layer nets
    # take about 2.8x as long per epoch.
    "degradation_full": [
        (name, "configs/resnet20_onecycle.yaml", [
            f"model.name={name}", "train.epochs=5", "log.histogram_every=0"])
        for name in ("resnet20", "plain20", "resnet56", "plain56")],
    # He et al. Fig. 6 itself, at full data and 20 and 56 layers: the paper's claim is that
    # plain-56 trains worse than plain-20 while ResNet-56 trains better than ResNet-20.
    # The one-cycle recipe in 10 epochs (3,900 iterations) for all four; a 20-layer net
    # takes ~16 min here (ResNet-20's epoch: ~95 s on the oneDNN path, 2026-12-01), a
    # 56-layer one about three times that (three times the blocks).
    "degradation_56_full": [
        (name, "configs/resnet20_onecycle.yaml", [
            f"model.name={name}", "train.epochs=10", "log.histogram_every=0"])
        for name in ("plain20", "plain56", "resnet20", "resnet56")],
    # ResNet vs DenseNet at full data and about one cost: DenseNet-40 (k=12, 265M MACs per
    # image) against ResNet-110 (253M), batch 64 as DenseNet's paper, the one-cycle recipe
    # with the peak rate halved with the batch, 3 epochs each (2,343 iterations): at batch
    # 64 on the Zen 3 host (AVX2, 2026-12-02) ResNet-110 trained at 44 images/s (~20 min
    # per epoch) and DenseNet-40 at 22 (~40 min), about 3 h 5 min for the two.
    "resnet_vs_densenet_full": [
        (name, "configs/resnet20_onecycle.yaml", [
            f"model.name={name}", "train.epochs=3", "train.batch_size=64", "optimizer.lr=0.1",
            "log.histogram_every=0"])
        for name in ("resnet110", "densenet40_k12")],
    # ResNet vs DenseNet at one budget (batch 64, as DenseNet's paper).
    "resnet_vs_densenet": [
        (name, "configs/quickstart.yaml", SHORT + [
            f"model.name={name}", "data.train_samples=4000", "data.test_samples=2000",
            "train.epochs=3", "train.batch_size=64"])
        for name in ("resnet20", "plain20", "densenet40_k12")],
    # A short one-cycle schedule repeated over seeds: the spread of a short budget.
    "seeds": [
        (f"resnet20_seed{seed}", "configs/quickstart.yaml", [f"seed={seed}",
                                                              "data.test_samples=null"])
        for seed in (0, 1, 2)],
    # The Paddle notebook's 20-epoch ResNet-18; on a CPU, as far as it gets: stop it with
    # Ctrl-C at any point and rerun the same command to continue.
    "notebook": [("resnet18", "configs/resnet18.yaml", [])],
}


def finished(run_dir: str) -> bool:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return False
    records = read_metrics(path)
    run = next((r for r in records if r.get("kind") == "run"), {})
    done = [r for r in records if r.get("kind") == "epoch"]
    return bool(run) and len(done) >= run.get("epochs", 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="added to every run, e.g. -o data.data_file=PATH")
    parser.add_argument("--root", default="runs", help="where the runs go (default runs/)")
    parser.add_argument("--out", default=None, help="table and figures (default "
                                                    "docs/results/EXPERIMENT)")
    parser.add_argument("--nproc", default=None,
                        help="processes per run (default: tools/train.py's, one per CPU core)")
    args = parser.parse_args()
    base = os.path.join(args.root, args.experiment)
    for name, config, overrides in EXPERIMENTS[args.experiment]:
        run_dir = os.path.join(base, name)
        if finished(run_dir):
            print(f"{name}: done, skipped")
            continue
        command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c",
                   os.path.join(ROOT, config)]
        for item in overrides + args.override + [f"output_dir={run_dir}"]:
            command += ["-o", item]
        if os.path.isfile(os.path.join(run_dir, "latest.pdckpt")):
            command.append("--resume")
        if args.nproc:
            command += ["--nproc", args.nproc]
        print(" ".join(command), flush=True)
        code = subprocess.call(command)
        if code:
            return code
    compare([base], args.out or os.path.join(ROOT, "docs", "results", args.experiment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
