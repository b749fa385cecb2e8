"""Trained ResNet weights swapped between paddle_resnet and its PyTorch twin
(benchmarks/torch_twin.py), each set evaluated by both on the whole test set: tells an
evaluation difference from a training difference when benchmarks/fidelity.py finds the
two implementations apart.

    pip install torch==2.13.0
    python benchmarks/torch_twin.py --data-file cifar-10-python.tar.gz --epochs 3 \\
        --seed 0 --lr 0.2 --nesterov --weight-decay 5e-4 --label-smoothing 0.1 \\
        --pct-start 0.25 --save twin.pt
    python benchmarks/fidelity_swap.py --data-file cifar-10-python.tar.gz \\
        --paddle pretrained/resnet20_cifar10.pdckpt --torch twin.pt

The same weights must score the same on both sides, up to float rounding of a few
borderline images; then a gap between the sides lives in the training, not in the
evaluation. The package evaluates as a user does (`tools/eval.py`, its default engine),
the twin with its own `evaluate`. Parameter names map one to one (the twin's `layers.k`
is the package's `layerS.i`; BN's running statistics are Paddle's `_mean`/`_variance`);
Paddle stores a Linear weight as (in, out), PyTorch as (out, in).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# As in fidelity.py: taken before paddle's import writes OMP_NUM_THREADS=1 into it.
ENVIRONMENT = dict(os.environ)

import torch_twin  # noqa: E402

TRANSPOSED = {"fc.weight"}


def twin_name(paddle_name: str, blocks_per_stage: int) -> str:
    stage = re.match(r"layer(\d+)\.(\d+)\.(.*)", paddle_name)
    if stage:
        index = (int(stage[1]) - 1) * blocks_per_stage + int(stage[2])
        paddle_name = f"layers.{index}.{stage[3]}"
    return re.sub(r"\._variance$", ".running_var", re.sub(r"\._mean$", ".running_mean",
                                                            paddle_name))


def to_twin(paddle_state, blocks_per_stage: int):
    """A torch state_dict for torch_twin.CifarResNet from the package's model state."""
    state = {}
    for name, value in paddle_state.items():
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        state[twin_name(name, blocks_per_stage)] = torch.from_numpy(
            array.T.copy() if name in TRANSPOSED else array.copy())
    return state


def to_paddle(twin_state, paddle_names, blocks_per_stage: int):
    """The package's model state (numpy arrays, under `paddle_names`: the package model's
    own) from a twin state_dict."""
    paddle_name = {twin_name(name, blocks_per_stage): name for name in paddle_names}
    state = {}
    for name, value in twin_state.items():
        if name.endswith("num_batches_tracked"):
            continue  # PyTorch's count of BN updates; Paddle keeps none
        array = value.detach().cpu().numpy()
        state[paddle_name[name]] = array.T.copy() if paddle_name[name] in TRANSPOSED else array
    return state


def load_into_twin(model, twin_state) -> None:
    """Loads a state converted by to_twin, which has no BN update counts (Paddle keeps
    none; evaluation and a momentum-set BN do not read them)."""
    state = dict(twin_state)
    for name, buffer in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state.setdefault(name, torch.zeros_like(buffer))
    model.load_state_dict(state, strict=True)


def evaluate_in_twin(model_name: str, twin_state, test_x, test_y) -> dict:
    model = torch_twin.CifarResNet(torch_twin.DEPTHS[model_name])
    load_into_twin(model, twin_state)
    loss, top1 = torch_twin.evaluate(model, test_x, test_y)
    return {"top1": top1, "loss": loss}


def evaluate_in_package(checkpoint: str, data_file: str, work: str) -> dict:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval.py"),
                           "-w", checkpoint, "-o", f"data.data_file={data_file}",
                           "--out", work], cwd=ROOT, env=ENVIRONMENT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"tools/eval.py failed on {checkpoint}: {done.stderr.strip()}")
    stem = os.path.splitext(os.path.basename(checkpoint))[0]
    with open(os.path.join(work, f"eval_{stem}_test.json"), encoding="utf-8") as f:
        report = json.load(f)
    return {"top1": report["top1"], "loss": report["loss"]}


def paddle_row(checkpoint: str, data_file: str, test_x, test_y, work: str) -> dict:
    """Weights trained by the package, evaluated by both."""
    from paddle_resnet.checkpoint import load_checkpoint
    state = load_checkpoint(checkpoint)
    model_name = state["config"]["model"]["name"]
    twin_state = to_twin(state["model"], torch_twin.DEPTHS[model_name])
    return {"weights": f"paddle_resnet ({checkpoint})",
            "package": evaluate_in_package(os.path.abspath(checkpoint), data_file, work),
            "twin": evaluate_in_twin(model_name, twin_state, test_x, test_y)}


def twin_row(weights: str, config: str, data_file: str, test_x, test_y, work: str) -> dict:
    """Weights trained by the twin, evaluated by both; the package reads them as a
    checkpoint under `config`."""
    import paddle
    from paddle_resnet.checkpoint import save_checkpoint
    from paddle_resnet.config import load_config
    from paddle_resnet.models import build_model
    cfg = load_config(config)
    model_name = cfg["model.name"]
    twin_state = torch.load(weights, map_location="cpu")
    names = build_model(model_name, **cfg.model_kwargs()).state_dict()
    converted = os.path.join(work, "twin_weights.pdckpt")
    save_checkpoint(converted, {
        "model": {k: paddle.to_tensor(v) for k, v in
                  to_paddle(twin_state, names, torch_twin.DEPTHS[model_name]).items()},
        "config": cfg.to_dict(), "progress": {}})
    return {"weights": f"PyTorch twin ({weights})",
            "package": evaluate_in_package(converted, data_file, work),
            "twin": evaluate_in_twin(model_name, twin_state, test_x, test_y)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", required=True)
    p.add_argument("--paddle", metavar="PDCKPT", help="weights trained by paddle_resnet")
    p.add_argument("--torch", metavar="PT", help="a state_dict saved by torch_twin.py --save")
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "resnet20_onecycle.yaml"),
                   help="the config a twin state is evaluated under in the package "
                        "(its model; default: %(default)s)")
    add_json_argument(p)
    args = p.parse_args()
    if not (args.paddle or args.torch):
        p.error("give --paddle, --torch or both")
    for flag, path in (("--data-file", args.data_file), ("--paddle", args.paddle),
                       ("--torch", args.torch)):
        if path is not None and not os.path.isfile(path):
            p.error(f"{flag} {path} does not exist")
    _, _, test_x, test_y = torch_twin.load_cifar10(args.data_file)

    from paddle_resnet.errors import UserError
    rows = []
    try:  # an unreadable checkpoint or config gets one line, as in tools/
        with tempfile.TemporaryDirectory(prefix="fidelity_swap_") as work:
            if args.paddle:
                rows.append(paddle_row(args.paddle, args.data_file, test_x, test_y, work))
            if args.torch:
                rows.append(twin_row(args.torch, args.config, args.data_file, test_x, test_y,
                                     work))
    except UserError as e:
        p.error(str(e))

    print(f"test top-1 (loss) on all {len(test_y):,} test images, each set of weights "
          "evaluated by both implementations\n")
    print("| weights | paddle_resnet evaluates | twin evaluates | difference |")
    print("|---|---:|---:|---:|")
    for row in rows:
        package, twin = row["package"], row["twin"]
        print(f"| {row['weights']} | {package['top1']:.2f}% ({package['loss']:.4f}) | "
              f"{twin['top1']:.2f}% ({twin['loss']:.4f}) | "
              f"{package['top1'] - twin['top1']:+.2f} pt |")
    write_json(args.json, {"data_file": args.data_file, "rows": rows})


if __name__ == "__main__":
    main()
