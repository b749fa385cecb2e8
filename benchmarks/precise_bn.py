"""Does a checkpoint's test accuracy suffer from its BN running statistics?

Training keeps BN's running mean and variance as an exponential average (Paddle's
momentum 0.9) over recent batches of the process that saves the checkpoint: statistics
of weights a few steps old, over 64 images at a time in two processes. This script
re-estimates them for the final weights, as pycls's precise BN does, from the mean of
the per-batch statistics over `--batches` training batches, and evaluates again:

    python benchmarks/precise_bn.py -w pretrained/resnet20_paper.pdckpt [--twin twin.pt] \
        -o data.data_file=/tmp/cifar10.tar.gz

It prints the test top-1 and loss as stored and after re-estimation over augmented
(as in training) and unaugmented training images. A large gain would mean the stored
statistics, not the weights, cost accuracy. `--twin PT` does the same for weights of the
PyTorch twin (`torch_twin.py --save` or `--checkpoint`; torch's cumulative BN average over
the same number of augmented batches), so that the two sides' stored statistics compare.
"""
import argparse
import os
import sys

import numpy as np
import paddle

from results_file import add_json_argument, write_json

from paddle_resnet.checkpoint import load_trained_model
from paddle_resnet.data import MEAN_STD, BatchLoader
from paddle_resnet.data.cifar import load_split
from paddle_resnet.engine.evaluator import evaluate


def batch_norms(model):
    return [m for m in model.sublayers()
            if isinstance(m, paddle.nn.layer.norm._BatchNormBase)]


@paddle.no_grad()
def reestimate(model, loader, batches):
    """Set every BN layer's running statistics to the mean of `batches` batch statistics."""
    norms = batch_norms(model)
    saved = [(norm._momentum, norm._mean.numpy(), norm._variance.numpy()) for norm in norms]
    sums = [[np.zeros_like(mean), np.zeros_like(var)] for _, mean, var in saved]
    for norm in norms:
        norm._momentum = 0.0  # running statistics := this batch's
    model.train()
    seen = 0
    for images, _ in loader.epoch(0):
        if seen == batches:
            break
        model(images)
        for total, norm in zip(sums, norms):
            total[0] += norm._mean.numpy()
            total[1] += norm._variance.numpy()
        seen += 1
    model.eval()
    for (momentum, _, _), (mean, var), norm in zip(saved, sums, norms):
        norm._momentum = momentum
        norm._mean.set_value(mean / seen)
        norm._variance.set_value(var / seen)
    return seen


def twin_rows(path, data_file, batches, batch_size):
    """The twin's (statistics, images, result) rows: as stored, and re-estimated."""
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_twin
    state = torch.load(path, weights_only=False, map_location="cpu")
    weights = state.get("model", state)  # a --checkpoint holds more than the weights
    train_x, _, test_x, test_y = torch_twin.load_cifar10(data_file)
    blocks = {key.split(".")[1] for key in weights if key.startswith("layers.")}
    model = torch_twin.CifarResNet(len(blocks) // 3)  # three stages of equal depth
    model.load_state_dict(weights)

    def result():
        loss, top1 = torch_twin.evaluate(model, test_x, test_y)
        return {"loss": loss, "top1": top1}

    name = os.path.basename(path)
    rows = [(f"{name}, as stored", None, result())]
    for norm in model.modules():
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.reset_running_stats()
            norm.momentum = None  # torch's cumulative average
    rng = np.random.default_rng(1)
    order = rng.permutation(len(train_x))
    model.train()
    with torch.no_grad():
        for index in range(batches):
            model(torch_twin.augment(train_x[order[index * batch_size:
                                                   (index + 1) * batch_size]], rng))
    rows.append((f"{name}, re-estimated, augment=standard", batches * batch_size, result()))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-w", "--weights", required=True)
    p.add_argument("--twin", action="append", default=[], metavar="PT",
                   help="also the PyTorch twin's weights (torch_twin.py --save/--checkpoint); "
                        "repeatable")
    p.add_argument("-o", "--override", action="append", default=[],
                   help="config overrides, e.g. data.data_file=PATH")
    p.add_argument("--batches", type=int, default=200, help="training batches per estimate")
    p.add_argument("--batch-size", type=int, default=64,
                   help="images per batch (64: one process's share of the recipe's 128)")
    add_json_argument(p)
    args = p.parse_args()
    model, cfg, _, _ = load_trained_model(args.weights, None, args.override)
    dataset, data_file = cfg["data.dataset"], cfg["data.data_file"]
    mean_std = MEAN_STD[dataset]
    test = BatchLoader(load_split(dataset, "test", data_file), 256, *mean_std)
    train = load_split(dataset, "train", data_file)
    stored = {name: tensor.numpy() for name, tensor in model.state_dict().items()}
    rows = [("as stored", None, evaluate(model, test, cfg["model.num_classes"]))]
    for augment in ("standard", "none"):
        model.set_state_dict(stored)
        loader = BatchLoader(train, args.batch_size, *mean_std, augment=augment,
                             shuffle=True, seed=1)
        seen = reestimate(model, loader, args.batches)
        rows.append((f"re-estimated, augment={augment}", seen * args.batch_size,
                     evaluate(model, test, cfg["model.num_classes"])))
    for twin in args.twin:
        rows += twin_rows(twin, data_file, args.batches, args.batch_size)
    names = " and ".join([args.weights] + args.twin)
    print(f"{names} on {len(test.split):,} test images\n")
    print("| BN statistics | training images | test top-1 | test loss |")
    print("|---|---:|---:|---:|")
    for name, images, result in rows:
        print(f"| {name} | {images or '–'} | {result['top1']:.2f}% | {result['loss']:.4f} |")
    write_json(args.json, {"weights": args.weights, "twins": args.twin, "batches": args.batches,
                           "batch_size": args.batch_size,
                           "rows": [{"statistics": name, "images": images, "top1": r["top1"],
                                     "loss": r["loss"]} for name, images, r in rows]})


if __name__ == "__main__":
    main()
