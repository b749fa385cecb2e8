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


def to_paddle(twin_state, blocks_per_stage: int):
    """The package's model state (numpy arrays) from a twin state_dict."""
    state = {}
    for name, value in twin_state.items():
        if name.endswith("num_batches_tracked"):
            continue  # PyTorch's count of BN updates; Paddle keeps none
        block = re.match(r"layers\.(\d+)\.(.*)", name)
        if block:
            stage, index = divmod(int(block[1]), blocks_per_stage)
            name = f"layer{stage + 1}.{index}.{block[2]}"
        name = re.sub(r"\.running_var$", "._variance", re.sub(r"\.running_mean$", "._mean",
                                                              name))
        array = value.detach().cpu().numpy()
        state[name] = array.T.copy() if name in TRANSPOSED else array
    return state


def evaluate_in_twin(model_name: str, twin_state, test_x, test_y) -> dict:
    model = torch_twin.CifarResNet(torch_twin.DEPTHS[model_name])
    for name, buffer in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            twin_state.setdefault(name, torch.zeros_like(buffer))
    model.load_state_dict(twin_state, strict=True)
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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", required=True)
    p.add_argument("--paddle", metavar="PDCKPT", help="weights trained by paddle_resnet")
    p.add_argument("--torch", metavar="PT", help="a state_dict saved by torch_twin.py --save")
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "resnet20_onecycle.yaml"),
                   help="the config a twin state is evaluated under in the package "
                        "(its model; default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the table's numbers here")
    args = p.parse_args()
    if not (args.paddle or args.torch):
        p.error("give --paddle, --torch or both")
    _, _, test_x, test_y = torch_twin.load_cifar10(args.data_file)

    from paddle_resnet.checkpoint import load_checkpoint, save_checkpoint
    from paddle_resnet.config import load_config
    rows = []
    with tempfile.TemporaryDirectory(prefix="fidelity_swap_") as work:
        if args.paddle:
            state = load_checkpoint(args.paddle)
            model_name = state["config"]["model"]["name"]
            blocks = torch_twin.DEPTHS[model_name]
            rows.append({"weights": f"paddle_resnet ({args.paddle})",
                         "package": evaluate_in_package(os.path.abspath(args.paddle),
                                                        args.data_file, work),
                         "twin": evaluate_in_twin(model_name, to_twin(state["model"], blocks),
                                                  test_x, test_y)})
        if args.torch:
            cfg = load_config(args.config)
            model_name = cfg["model.name"]
            blocks = torch_twin.DEPTHS[model_name]
            twin_state = torch.load(args.torch, map_location="cpu")
            import paddle
            converted = os.path.join(work, "twin_weights.pdckpt")
            save_checkpoint(converted, {
                "model": {k: paddle.to_tensor(v)
                          for k, v in to_paddle(twin_state, blocks).items()},
                "config": cfg.to_dict(), "progress": {}})
            rows.append({"weights": f"PyTorch twin ({args.torch})",
                         "package": evaluate_in_package(converted, args.data_file, work),
                         "twin": evaluate_in_twin(model_name, dict(twin_state),
                                                  test_x, test_y)})

    print(f"test top-1 (loss) on all {len(test_y):,} test images, each set of weights "
          "evaluated by both implementations\n")
    print("| weights | paddle_resnet evaluates | twin evaluates | difference |")
    print("|---|---:|---:|---:|")
    for row in rows:
        package, twin = row["package"], row["twin"]
        print(f"| {row['weights']} | {package['top1']:.2f}% ({package['loss']:.4f}) | "
              f"{twin['top1']:.2f}% ({twin['loss']:.4f}) | "
              f"{package['top1'] - twin['top1']:+.2f} pt |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"data_file": args.data_file, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
