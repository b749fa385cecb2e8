"""The input gradient of stride-1 convolutions as a forward convolution
(paddle_resnet/models/conv_grad.py) against Paddle's own conv2d_grad: dygraph training
steps, one process, one thread, the two forms interleaved over repeats in one run.

    python benchmarks/conv_input_grad.py --models resnet20 resnet18 --batch 64 --repeats 5

Each model also gets a gradient check: one step from the same weights and batch with
each form, reporting the largest difference of any parameter's gradient relative to that
parameter's largest gradient.
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# One core per process, as the package's default arrangement runs it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

import paddle_resnet  # noqa: E402,F401  (MKL's fast path on AMD)
from paddle_resnet.models import build_model  # noqa: E402
from paddle_resnet.models import use_conv_for_input_grad  # noqa: E402

FORMS = ["Paddle's conv2d_grad", "forward convolution"]
WARMUP = 2


def model_and_batch(name: str, batch: int, form: str):
    paddle.seed(0)
    model = build_model(name, num_classes=10)
    if form == FORMS[1]:
        use_conv_for_input_grad(model)
    images = paddle.randn([batch, 3, 32, 32])
    labels = paddle.randint(0, 10, [batch])
    return model, images, labels


def gradients(name: str, batch: int, form: str):
    model, images, labels = model_and_batch(name, batch, form)
    F.cross_entropy(model(images), labels).backward()
    return {key: p.grad.numpy() for key, p in model.named_parameters() if p.grad is not None}


def images_per_second(name: str, batch: int, form: str, steps: int) -> float:
    model, images, labels = model_and_batch(name, batch, form)
    optimizer = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters())

    def step():
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        optimizer.clear_grad()

    for _ in range(WARMUP):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20"])
    parser.add_argument("--batch", type=int, default=64,
                        help="per-process batch (the quickstart's 128 over 2 processes)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="benchmarks/results/conv_input_grad.json")
    args = parser.parse_args()
    paddle.set_device("cpu")

    results = {}
    print(f"| {args.batch} images per step, {args.steps} steps x {args.repeats}, 1 thread "
          "| Paddle's conv2d_grad, images/s | forward convolution, images/s | speed-up "
          "| largest gradient difference |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        runs = {form: [] for form in FORMS}
        for _ in range(args.repeats):
            for form in FORMS:
                runs[form].append(images_per_second(name, args.batch, form, args.steps))
        reference, switched = (gradients(name, args.batch, form) for form in FORMS)
        difference = max(float(abs(reference[k] - switched[k]).max() / abs(reference[k]).max())
                         for k in reference)
        medians = {form: statistics.median(runs[form]) for form in FORMS}
        speedup = medians[FORMS[1]] / medians[FORMS[0]]
        results[name] = {"runs": runs, "median": medians, "speedup": speedup,
                         "gradient_difference": difference}
        print(f"| {name} | {medians[FORMS[0]]:.1f} | {medians[FORMS[1]]:.1f} | "
              f"{speedup:.2f}x | {difference:.1e} |")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fp:
        json.dump({"batch": args.batch, "steps": args.steps, "repeats": args.repeats,
                   "results": results}, fp, indent=2)


if __name__ == "__main__":
    main()
