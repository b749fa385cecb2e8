"""Which test-time views pay, on a trained checkpoint?

Each image is taken at 3x3 one-pixel moves and two-pixel diagonal moves, each as it is and
mirrored, through the package's own `shifted` (what `eval.tta=flip_shift` runs); the logits
of every view are computed once, and each set of views is scored by the mean of its
logits:

    python benchmarks/tta_views.py -w runs/resnet20/latest.pdckpt \
        -o data.data_file=../shared/data/cifar10-lossless.tar.xz [--json out.json]

It prints each set's test top-1 and how many forward passes it costs. The set
`eval.tta=flip_shift` names is checked against the package's own evaluation of it.
"""
import argparse

import numpy as np
import paddle

from results_file import add_json_argument, write_json

from paddle_resnet.checkpoint import load_trained_model
from paddle_resnet.data import MEAN_STD, BatchLoader
from paddle_resnet.data.cifar import load_split
from paddle_resnet.engine.eval_engine import SHIFTS, VIEWS, shifted

# name -> the moves (dy, dx) it takes, each as it is and mirrored ("one view": unmirrored)
SETS = {
    "flip (eval.tta=flip)": ((0, 0),),
    "flip + one pixel up-left, down-right (eval.tta=flip_shift)": SHIFTS,
    "flip + one pixel up-right, down-left": ((0, 0), (-1, 1), (1, -1)),
    "flip + one pixel along both diagonals": ((0, 0), (-1, -1), (1, 1), (-1, 1), (1, -1)),
    "flip + one pixel along the axes": ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)),
    "flip + all eight one-pixel moves": tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)),
    "flip + two pixels up-left, down-right": ((0, 0), (-2, -2), (2, 2)),
}


@paddle.no_grad()
def view_logits(model, loader, moves):
    """{(dy, dx, mirrored): logits of every test image}, and the labels."""
    logits = {(dy, dx, m): [] for dy, dx in moves for m in (False, True)}
    labels = []
    for images, batch_labels in loader.epoch(0):
        labels.append(batch_labels.numpy())
        for dy, dx in moves:
            view = shifted(images, "NCHW", dy, dx)
            logits[(dy, dx, False)].append(model(view).numpy())
            logits[(dy, dx, True)].append(model(paddle.flip(view, axis=[3])).numpy())
    return {k: np.concatenate(v) for k, v in logits.items()}, np.concatenate(labels)


def top1(logits, labels) -> float:
    return 100.0 * float((logits.argmax(1) == labels).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-w", "--weights", required=True)
    p.add_argument("-o", "--override", action="append", default=[],
                   help="config overrides, e.g. data.data_file=PATH")
    add_json_argument(p)
    args = p.parse_args()
    model, cfg, _, _ = load_trained_model(args.weights, None, args.override)
    dataset = cfg["data.dataset"]
    test = BatchLoader(load_split(dataset, "test", cfg["data.data_file"]), 500,
                       *MEAN_STD[dataset])
    moves = sorted({move for chosen in SETS.values() for move in chosen})
    logits, labels = view_logits(model, test, moves)
    rows = [("one view (eval.tta=none)", 1, top1(logits[(0, 0, False)], labels))]
    for name, chosen in SETS.items():
        views = [logits[(dy, dx, m)] for dy, dx in chosen for m in (False, True)]
        rows.append((name, len(views), top1(np.mean(views, axis=0), labels)))
    # the package's own six views, through the function evaluation calls
    package = VIEWS["flip_shift"][0](model, "NCHW")
    own = np.concatenate([package(images).numpy() for images, _ in test.epoch(0)])
    print(f"{args.weights} on {len(labels):,} test images (dygraph, NCHW, float32)\n")
    print("| views | forward passes | test top-1 |")
    print("|---|---:|---:|")
    for name, passes, accuracy in rows:
        print(f"| {name} | {passes} | {accuracy:.2f}% |")
    print(f"\neval.tta=flip_shift through the package's evaluation: {top1(own, labels):.2f}%")
    write_json(args.json, {"weights": args.weights, "images": len(labels),
                           "flip_shift_in_package": top1(own, labels),
                           "rows": [{"views": n, "passes": k, "top1": a} for n, k, a in rows]})


if __name__ == "__main__":
    main()
