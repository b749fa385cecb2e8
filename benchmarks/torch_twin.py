"""An independent PyTorch implementation of this package's CIFAR ResNet training, as a
PyTorch user would write it: the yardstick for speed (benchmarks/quickstart_speed.py)
and for fidelity (benchmarks/fidelity.py).

    pip install torch==2.13.0
    python benchmarks/torch_twin.py --data-file cifar-10-python.tar.gz --epochs 3 --seed 0

Twin of paddle_resnet, piece by piece: He et al.'s CIFAR ResNet with the option-A
shortcut (subsample, zero channels on both sides); He (Kaiming) normal init of the
convolutions over fan-in, BN weight 1 and bias 0, the classifier U(+-1/sqrt(fan_in))
(torch's default, the package's explicit choice); BN momentum 0.1 (Paddle's 0.9) and
eps 1e-5; the standard augmentation (zero-pad 4, random 32x32 crop, horizontal flip
with p = 0.5) then standardisation with the package's CIFAR-10 mean and std; SGD with a
constant momentum (no momentum cycling), coupled L2 weight decay, optional Nesterov; the
learning rate set every iteration from the same one-cycle formula as
`paddle_resnet/optim.py`, or its multistep decays (torch's OneCycleLR would also cycle
momentum unless
`cycle_momentum=False`, and ends at peak/25e4 rather than 0); label smoothing through
`F.cross_entropy`; the ragged last batch dropped. With `--bn-split N` each batch is
normalised in N equal parts, as N data-parallel processes without SyncBN normalise it
(DDP's default, and the package's one process per core); the parts' running statistics
go through the one set of BN buffers in turn, where DDP keeps one set per process. It
reads the same archive (`paddle.vision.datasets.Cifar10`'s layout) and shares no code
with the package. `build()` also makes the twins of ResNet-18 and DenseNet-40 (k = 12),
which `frameworks.py` times.

Prints one JSON line per epoch (train loss/top-1, test loss/top-1, seconds) and, with
`--json`, writes them to a file; `--save` keeps the trained weights.
"""
import argparse
import json
import math
import os
import pickle
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)
DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}


def build(name: str) -> "nn.Module":
    """The twin of a package model by name: the paper's CIFAR ResNets, ResNet-18 and
    DenseNet-40 (k = 12)."""
    if name == "resnet18":
        return CifarResNet([2, 2, 2, 2], widths=(64, 128, 256, 512), shortcut="B")
    if name == "densenet40_k12":
        return DenseNet40()
    return CifarResNet(DEPTHS[name])


def load_cifar10(path):
    """(train images, train labels, test images, test labels), uint8 NHWC and int64."""
    train_batches = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if not (name.startswith("data_batch") or name == "test_batch"):
                continue
            batch = pickle.load(tar.extractfile(member), encoding="bytes")
            images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
            images = images.transpose(0, 2, 3, 1)
            labels = np.asarray(batch[b"labels"], np.int64)
            if name == "test_batch":
                test = (images, labels)
            else:
                train_batches.append((name, images, labels))
    train_batches.sort(key=lambda item: item[0])
    return (np.concatenate([x for _, x, _ in train_batches]),
            np.concatenate([y for _, _, y in train_batches]), *test)


def he_init(model):
    """He (Kaiming) normal over fan-in for every convolution, in module order."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")


class ShortcutA(nn.Module):
    def __init__(self, extra):
        super().__init__()
        self.before, self.after = extra // 2, extra - extra // 2

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.before, self.after))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, shortcut="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ShortcutA(cout - cin)
        else:  # option B: a strided 1x1 projection, as the 32x32 ResNet-18
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (`blocks_per_stage` an int: three stages of 16/32/64
    channels, option A); with per-stage blocks, widths and option B, the package's 32x32
    ResNet-18 (3x3 stem, no max-pool)."""

    def __init__(self, blocks_per_stage, num_classes=10, widths=(16, 32, 64), shortcut="A"):
        super().__init__()
        if isinstance(blocks_per_stage, int):
            blocks_per_stage = [blocks_per_stage] * len(widths)
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for stage, (blocks, width) in enumerate(zip(blocks_per_stage, widths)):
            for index in range(blocks):
                layers.append(BasicBlock(cin, width, 2 if stage and not index else 1,
                                         shortcut))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        he_init(self)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class DenseNet40(nn.Module):
    """Huang et al. 2017's DenseNet (L = 40, k = 12) for CIFAR, as torchvision writes a
    dense layer: 3x3 stem of 16, three blocks of 12 BN-ReLU-conv layers, each
    concatenating its 12 new maps to its input; between blocks BN-ReLU-1x1 conv (no
    compression) and 2x2 average pooling."""

    def __init__(self, num_classes=10, growth=12, layers_per_block=12):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        stages, channels = [], 16
        for block in range(3):
            for _ in range(layers_per_block):
                stages.append(DenseLayer(channels, growth))
                channels += growth
            if block < 2:
                stages += [nn.BatchNorm2d(channels), nn.ReLU(),
                           nn.Conv2d(channels, channels, 1, bias=False), nn.AvgPool2d(2)]
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        he_init(self)

    def forward(self, x):
        x = F.relu(self.bn(self.features(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def onecycle(step, peak, total, pct_start=0.3, min_lr=0.0):
    """paddle_resnet's per-iteration one-cycle curve (optim.py), re-derived."""
    span = max(1, total - 1)
    rise = max(1, round(pct_start * span))
    if step < rise:
        start = peak / 25.0
        return start + (peak - start) * 0.5 * (1 - math.cos(math.pi * step / rise))
    progress = min(1.0, (step - rise) / max(1, span - rise))
    return min_lr + (peak - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def multistep(step, peak, total, milestones=(0.5, 0.75), gamma=0.1):
    """paddle_resnet's multistep rate (optim.py), re-derived: x gamma once a step reaches
    each milestone, a fraction of the run's iterations."""
    return peak * gamma ** sum(step >= round(m * total) for m in milestones)


def schedule_rate(schedule, peak, total, pct_start=0.3, milestones=(0.5, 0.75), gamma=0.1):
    """The rate at each step of a run of `total` steps, for "onecycle" or "multistep"."""
    if schedule == "onecycle":
        return lambda step: onecycle(step, peak, total, pct_start)
    if schedule == "multistep":
        return lambda step: multistep(step, peak, total, milestones, gamma)
    raise ValueError(f"schedule must be onecycle or multistep, got {schedule!r}")


def augment(images, rng):
    """Zero-pad 4, random crop, horizontal flip; then standardise; NCHW float32."""
    n = len(images)
    padded = np.zeros((n, 40, 40, 3), np.uint8)
    padded[:, 4:36, 4:36] = images
    ys, xs = rng.integers(0, 9, n), rng.integers(0, 9, n)
    rows = ys[:, None] + np.arange(32)
    cols = xs[:, None] + np.arange(32)
    flip = rng.random(n) < 0.5
    cols[flip] = cols[flip, ::-1]
    crops = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return standardise(crops)


def standardise(images):
    return torch.from_numpy(((images / np.float32(255) - MEAN) / STD)
                            .astype(np.float32).transpose(0, 3, 1, 2).copy())


def evaluate(model, images, labels, batch=256):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = standardise(images[start:start + batch])
            y = torch.from_numpy(labels[start:start + batch])
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    model.train()
    return loss / len(images), 100.0 * correct / len(images)


# Flags that may change between a run's sittings without changing the run (threads and
# the memory layout change only the order in which the kernels sum).
RESTARTABLE = ("json", "save", "threads", "channels_last")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", required=True)
    p.add_argument("--model", default="resnet20", choices=sorted(DEPTHS))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--schedule", choices=("onecycle", "multistep"), default="onecycle")
    p.add_argument("--pct-start", type=float, default=0.3, help="onecycle's rising part")
    p.add_argument("--milestones", type=float, nargs="+", default=[0.5, 0.75],
                   help="multistep's decays, as fractions of the run (He et al.: 0.5 0.75)")
    p.add_argument("--gamma", type=float, default=0.1, help="multistep's factor")
    p.add_argument("--train-samples", type=int, default=0, help="first N (0: all)")
    p.add_argument("--test-samples", type=int, default=0, help="first N (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bn-split", type=int, default=1,
                   help="normalise each batch in this many equal parts (default 1: whole)")
    p.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    p.add_argument("--channels-last", action="store_true",
                   help="model and batches in torch.channels_last (its fastest fp32 CPU "
                        "setting here)")
    p.add_argument("--bf16-autocast", action="store_true",
                   help="forward and loss under torch.autocast('cpu', torch.bfloat16): with "
                        "--channels-last, PyTorch's fastest CPU training setting")
    p.add_argument("--json", default=None, help="also write the epoch records here")
    p.add_argument("--checkpoint", default=None, metavar="PT",
                   help="save weights, optimizer, rng and records here after every epoch, "
                        "and continue from it if it exists (a run longer than a sitting)")
    p.add_argument("--save", default=None, metavar="PT",
                   help="write the trained state_dict here (benchmarks/fidelity_swap.py "
                        "evaluates it in the package)")
    args = p.parse_args()
    if args.bn_split < 1 or args.batch_size % args.bn_split:
        p.error(f"--bn-split {args.bn_split} must be >= 1 and divide --batch-size "
                f"{args.batch_size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_x, train_y, test_x, test_y = load_cifar10(args.data_file)
    if args.train_samples:
        train_x, train_y = train_x[:args.train_samples], train_y[:args.train_samples]
    if args.test_samples:
        test_x, test_y = test_x[:args.test_samples], test_y[:args.test_samples]
    model = CifarResNet(DEPTHS[args.model])
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                nesterov=args.nesterov, weight_decay=args.weight_decay)
    steps = len(train_x) // args.batch_size
    total, step, records, start = steps * args.epochs, 0, [], time.perf_counter()
    run_flags = {k: v for k, v in vars(args).items() if k not in RESTARTABLE}
    rate = schedule_rate(args.schedule, args.lr, total, args.pct_start, args.milestones,
                         args.gamma)
    first, spent = 0, 0.0  # epochs done and seconds spent before this process
    if args.checkpoint and os.path.isfile(args.checkpoint):
        state = torch.load(args.checkpoint, weights_only=False)
        differing = [f"--{k.replace('_', '-')} {state['args'].get(k)} there, {v} here"
                     for k, v in run_flags.items() if state["args"].get(k) != v]
        if differing:
            sys.exit(f"error: {args.checkpoint} is from another run ({'; '.join(differing)}); "
                     "pass its flags or another --checkpoint")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        records, first = state["records"], state["epoch"]
        step, spent = first * steps, records[-1]["elapsed"]
        print(f"continuing from {args.checkpoint} after epoch {first}", file=sys.stderr)
    for epoch in range(first, args.epochs):
        order = rng.permutation(len(train_x))
        loss_sum, correct, seen = 0.0, 0, 0
        for index in range(steps):
            picked = order[index * args.batch_size:(index + 1) * args.batch_size]
            x, y = augment(train_x[picked], rng), torch.from_numpy(train_y[picked])
            x = x.contiguous(memory_format=layout)
            for group in optimizer.param_groups:
                group["lr"] = rate(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16_autocast):
                logits = torch.cat([model(part) for part in x.chunk(args.bn_split)])
                loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        test_loss, test_top1 = evaluate(model, test_x, test_y)
        records.append({"epoch": epoch + 1, "train_loss": loss_sum / seen,
                        "train_top1": 100.0 * correct / seen, "test_loss": test_loss,
                        "test_top1": test_top1,
                        "elapsed": spent + time.perf_counter() - start})
        print(json.dumps(records[-1]), flush=True)
        if args.checkpoint:  # written whole, then renamed: a kill never leaves half a file
            torch.save({"args": run_flags,
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": rng.bit_generator.state, "records": records,
                        "epoch": epoch + 1}, args.checkpoint + ".tmp")
            os.replace(args.checkpoint + ".tmp", args.checkpoint)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "epochs": records}, f, indent=1)
    if args.save:
        torch.save(model.state_dict(), args.save)


if __name__ == "__main__":
    main()
