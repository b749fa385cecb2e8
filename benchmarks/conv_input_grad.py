"""The input gradient of stride-1 convolutions as a forward convolution
(paddle_resnet/speed/conv_grad.py) against Paddle's own conv2d_grad: dygraph training
steps, one process, one thread, the two forms interleaved over repeats in one run.

    python benchmarks/conv_input_grad.py --models resnet20 resnet18 --batch 64 --repeats 5

Each model also gets a gradient check: one step from the same weights and batch with
each form, reporting the largest difference of any parameter's gradient relative to that
parameter's largest gradient.

    python benchmarks/conv_input_grad.py --layers --batch 32

times the input gradient alone for single layers of the shapes these models use (Paddle's
share of conv2d_grad: both gradients minus the weight's alone), the measurements behind
the rule of which layers are switched (`pays_off` in paddle_resnet/speed/conv_grad.py).
"""
import argparse
import os
import statistics
import sys
import time

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# One core per process, as the package's default arrangement runs it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()  # MKL's fast path on AMD, before Paddle computes
from paddle_resnet.engine.step import train_step  # noqa: E402
from paddle_resnet.models import build_model  # noqa: E402
from paddle_resnet.speed.conv_grad import use_conv_for_input_grad  # noqa: E402
from paddle_resnet.models.registry import UnknownModelError, get_builder  # noqa: E402

FORMS = ["Paddle's conv2d_grad", "forward convolution"]
WARMUP = 2
# (in, out, size, kernel): ResNet-20's three widths, ResNet-18's four, a ResNet-50
# bottleneck's 1x1 pair, DenseNet-40's narrowing 3x3 layers.
LAYERS = [(16, 16, 32, 3), (32, 32, 16, 3), (64, 64, 8, 3), (64, 64, 32, 3),
          (128, 128, 16, 3), (256, 256, 8, 3), (512, 512, 4, 3), (64, 256, 8, 1),
          (256, 64, 8, 1), (48, 12, 32, 3), (100, 12, 16, 3), (160, 12, 32, 3)]


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
    step = lambda: train_step(model, images, labels, optimizer)  # noqa: E731
    for _ in range(WARMUP):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def layer_table(batch: int, repeats: int):
    print(f"| layer, batch {batch}, 1 thread | Paddle's input gradient, ms | forward "
          "convolution, ms | speed-up | switched |")
    print("|---|---:|---:|---:|---|")
    rows = []
    for in_channels, out_channels, size, kernel in LAYERS:
        layer = paddle.nn.Conv2D(in_channels, out_channels, kernel, padding=kernel // 2,
                                 bias_attr=False)
        images = paddle.randn([batch, in_channels, size, size])
        grad_out = paddle.randn([batch, out_channels, size, size])

        def paddle_grads(with_input: bool):
            x = images.detach()
            x.stop_gradient = not with_input
            targets = [x, layer.weight] if with_input else [layer.weight]
            return paddle.grad([layer(x)], targets, [grad_out])

        flipped = layer.weight.detach().flip([2, 3]).transpose([1, 0, 2, 3])
        forward_form = median_ms(lambda: F.conv2d(grad_out, flipped, padding=kernel // 2),
                                 repeats)
        # Paddle computes both gradients in one kernel: its input gradient's cost is the
        # difference to the weight gradient alone.
        paddle_form = (median_ms(lambda: paddle_grads(True), repeats)
                       - median_ms(lambda: paddle_grads(False), repeats))
        switched = use_conv_for_input_grad(layer) == 1
        name = f"{in_channels} -> {out_channels}, {size}x{size}, {kernel}x{kernel}"
        rows.append({"layer": name, "paddle_ms": paddle_form, "forward_ms": forward_form,
                     "switched": switched})
        print(f"| {name} | {paddle_form:.2f} | {forward_form:.2f} | "
              f"{paddle_form / forward_form:.2f}x | {'yes' if switched else 'no'} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20"])
    parser.add_argument("--batch", type=int, default=64,
                        help="per-process batch (the quickstart's 128 over 2 processes)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", action="store_true",
                        help="time single layers' input gradients instead of models")
    add_json_argument(parser)
    args = parser.parse_args()
    for flag in ("batch", "steps", "repeats"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} {getattr(args, flag)} must be at least 1")
    for name in args.models:
        try:
            get_builder(name)
        except UnknownModelError as e:
            parser.error(str(e))
    paddle.set_device("cpu")
    if args.layers:
        rows = layer_table(args.batch, args.repeats)
        write_json(args.json, {"batch": args.batch, "repeats": args.repeats, "layers": rows})
        return

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
    write_json(args.json, {"batch": args.batch, "steps": args.steps, "repeats": args.repeats,
                           "results": results})


if __name__ == "__main__":
    main()
