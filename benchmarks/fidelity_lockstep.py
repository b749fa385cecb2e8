"""paddle_resnet and its PyTorch twin (benchmarks/torch_twin.py) stepped in lockstep: the
same initial weights, the same augmented batches, the package's optimiser, schedule and
loss on one side and the twin's on the other; after every step, how far apart the two
sets of weights are.

    pip install torch==2.13.0
    python benchmarks/fidelity_lockstep.py --data-file cifar-10-python.tar.gz --steps 20
    python benchmarks/fidelity_lockstep.py --data-file ... --float64 --bn-split 2

In float32, rounding alone makes the two drift (the libraries sum in different orders,
and a ReLU that flips on a rounding error moves a whole gradient sum); `--float64` takes
rounding out, so what remains is a difference in the arithmetic itself (weight decay,
Nesterov, label smoothing, batch norm): it shows at the first step. Two are known and
small: Paddle keeps the learning rate in float32 (up to 5e-8 relative after a step, in float64
mode), and it updates BN's running variance with the biased batch variance where
PyTorch uses the unbiased one (a factor 1 + 1/(n - 1), n = images x pixels per channel:
1e-4 at 8 x 8 pixels and batch 128). Before the steps, the whole learning-rate curve of
both sides is compared (one-cycle or multistep, as the config says). The recipe is the
config's (default configs/resnet20_onecycle.yaml) with `train.epochs` from `--epochs`;
`--bn-split 2` normalises each batch in halves on both sides, as the package's two
processes do.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import torch_twin  # noqa: E402
from fidelity_swap import load_into_twin, to_twin  # noqa: E402


def worst_gaps(paddle_state, twin_model, blocks_per_stage: int):
    """((gap, name) of the trained parameters, (gap, name) of BN's running statistics),
    each the worst tensor's max |paddle - twin| / max |twin|."""
    ours = to_twin(paddle_state, blocks_per_stage)
    gaps = {}
    for name, theirs in twin_model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        scale = theirs.abs().max().item() or 1.0
        gaps[name] = ((ours[name] - theirs).abs().max().item() / scale, name)
    running = [gap for name, gap in gaps.items() if ".running_" in name]
    trained = [gap for name, gap in gaps.items() if ".running_" not in name]
    return max(trained), max(running)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", required=True)
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "resnet20_onecycle.yaml"))
    p.add_argument("--epochs", type=int, default=3, help="the schedule's length (default 3)")
    p.add_argument("--steps", type=int, default=20, help="steps to take in lockstep")
    p.add_argument("--bn-split", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true",
                   help="both sides in float64: rounding drops out, only differences in "
                        "the arithmetic remain")
    args = p.parse_args()
    if args.bn_split < 1:
        p.error(f"--bn-split {args.bn_split} must be >= 1")
    if not os.path.isfile(args.data_file):
        p.error(f"--data-file {args.data_file} does not exist")

    import paddle
    from paddle_resnet.config import load_config
    from paddle_resnet.data.augment import apply_crop_flip, draw_crop_flip
    from paddle_resnet.data.cifar import MEAN_STD
    from paddle_resnet.engine.losses import label_smoothed_cross_entropy
    from paddle_resnet.optim import build_optimizer, build_schedule
    from paddle_resnet.errors import UserError
    from paddle_resnet.models import build_model

    paddle.set_device("cpu")
    dtype = "float64" if args.float64 else "float32"
    paddle.set_default_dtype(dtype)
    try:
        cfg = load_config(args.config, [f"train.epochs={args.epochs}"])
    except UserError as e:
        p.error(str(e))
    name, batch = cfg["model.name"], cfg["train.batch_size"]
    if batch % args.bn_split:
        p.error(f"--bn-split {args.bn_split} must divide the config's train.batch_size {batch}")
    blocks = torch_twin.DEPTHS[name]
    train_x, train_y, _, _ = torch_twin.load_cifar10(args.data_file)
    steps_per_epoch = len(train_x) // batch
    total = steps_per_epoch * args.epochs

    paddle.seed(args.seed)
    model = build_model(name, **cfg.model_kwargs())
    model.train()
    schedule = build_schedule(cfg, steps_per_epoch)
    if cfg["schedule.name"] not in ("onecycle", "multistep"):
        p.error(f"the twin implements one-cycle and multistep schedules; {args.config} has "
                f"schedule.name {cfg['schedule.name']}")
    twin_rate = torch_twin.schedule_rate(cfg["schedule.name"], cfg["optimizer.lr"], total,
                                         cfg["schedule.pct_start"], cfg["schedule.milestones"],
                                         cfg["schedule.gamma"])
    curve_gap = max(abs(schedule.lr_at(step) - twin_rate(step)) for step in range(total))
    optimizer = build_optimizer(cfg, model.parameters(), schedule)

    twin = torch_twin.CifarResNet(blocks).to(getattr(torch, dtype))
    load_into_twin(twin, to_twin(model.state_dict(), blocks))
    twin.train()
    twin_optimizer = torch.optim.SGD(
        twin.parameters(), lr=cfg["optimizer.lr"], momentum=cfg["optimizer.momentum"],
        nesterov=cfg["optimizer.nesterov"], weight_decay=cfg["optimizer.weight_decay"])

    mean, std = MEAN_STD[cfg["data.dataset"]]
    smoothing = cfg["train.label_smoothing"]
    rng = np.random.default_rng(args.seed)
    print(f"{name} in {dtype}, batch {batch} (BN over {batch // args.bn_split}), schedule "
          f"of {total} steps (the two learning-rate curves differ by at most "
          f"{curve_gap:.1e}); gap = max |paddle - twin| / max |twin| of the worst tensor, "
          "among the trained parameters and among BN's running statistics\n")
    print("| step | lr (package / twin) | loss paddle_resnet | loss twin | parameters: gap, "
          "worst | running statistics: gap, worst |")
    print("|---:|---|---:|---:|---|---|")
    for step in range(args.steps):
        picked = rng.choice(len(train_x), batch, replace=False)
        images = apply_crop_flip(train_x[picked], draw_crop_flip(batch, rng), mean,
                                 std).astype(dtype)
        labels = train_y[picked]

        lr = optimizer.get_lr()
        logits = paddle.concat([model(part) for part in
                                paddle.split(paddle.to_tensor(images), args.bn_split)])
        loss = label_smoothed_cross_entropy(logits, paddle.to_tensor(labels), smoothing)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()

        twin_lr = twin_rate(step)
        for group in twin_optimizer.param_groups:
            group["lr"] = twin_lr
        twin_logits = torch.cat([twin(part) for part in
                                 torch.from_numpy(images).chunk(args.bn_split)])
        twin_loss = F.cross_entropy(twin_logits, torch.from_numpy(labels),
                                    label_smoothing=smoothing)
        twin_optimizer.zero_grad()
        twin_loss.backward()
        twin_optimizer.step()

        (trained, trained_name), (running, running_name) = worst_gaps(
            model.state_dict(), twin, blocks)
        print(f"| {step + 1} | {lr:.6f} / {twin_lr:.6f} | {float(loss):.8f} | "
              f"{twin_loss.item():.8f} | {trained:.1e} {trained_name} | "
              f"{running:.1e} {running_name} |", flush=True)


if __name__ == "__main__":
    main()
