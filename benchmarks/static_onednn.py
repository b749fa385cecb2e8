"""Trial: does a static Paddle program with oneDNN kernels train the CIFAR ResNets faster
than the package's dygraph step? Each variant runs in its own process on one core (what
each of the default's processes has), interleaved over repeats; a variant Paddle cannot
run is reported with Paddle's own message instead of a number.

    python benchmarks/static_onednn.py --models resnet20 plain20 --batch 64 --repeats 3

Variants (batch 64 = the per-process batch of the default quickstart on 2 cores; SGD
with momentum 0.9; random data):

- `dygraph`: the package's training step (forward, backward, Momentum) as it runs today;
- `static`: the same model traced into a `paddle.static` program (PIR, Paddle 3's default);
- `static + oneDNN`: that program with `FLAGS_use_mkldnn=1` set before `import paddle`;
- `static + oneDNN, bf16`: `paddle.static.amp.bf16.decorate_bf16` (pure bf16), which
  exists only for the legacy program (`FLAGS_enable_pir_api=0`), which runs the package's
  own `ShortcutA`.

In a static program with oneDNN, option-A's zero padding fails inside Paddle 3.3.1
(`RuntimeError: std::exception`): the culprit is not the strided subsampling but the
zeros, made from a channel slice of `x` (as `ShortcutA` does) or by `paddle.zeros`. The
static variants therefore build the same padding from ops it accepts: `concat([0 * x, x])`
rolled back by half the new channels gives `[0, x, 0]`, equal element for element.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WARMUP = 2
VARIANTS = {  # name -> the environment Paddle must see before it is imported
    "dygraph": {},
    "static": {},
    "static + oneDNN": {"FLAGS_use_mkldnn": "1"},
    "static + oneDNN, bf16": {"FLAGS_use_mkldnn": "1", "FLAGS_enable_pir_api": "0"},
}


def pad_by_roll(shortcut, x):
    """Option A's `[0, x, 0]` on the channel axis without slicing or constant zeros."""
    import paddle
    doubled = paddle.concat([x * 0.0, x], axis=shortcut.axis)
    return paddle.roll(doubled, -shortcut.pad_before, axis=shortcut.axis)


def static_step(name: str, batch: int, bf16: bool):
    import numpy as np
    import paddle
    import paddle.nn.functional as F

    from paddle_resnet.models import build_model
    from paddle_resnet.models.resnet import ShortcutA

    def forward(shortcut, x):
        if shortcut.stride > 1:
            x = x[:, :, ::shortcut.stride, ::shortcut.stride]
        return pad_by_roll(shortcut, x)
    if not bf16:  # the legacy program's roll is refused before oneDNN is reached
        ShortcutA.forward = forward  # this process only
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        model = build_model(name)
        images = paddle.static.data("images", [batch, 3, 32, 32], "float32")
        labels = paddle.static.data("labels", [batch], "int64")
        loss = F.cross_entropy(model(images), labels)
        optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9)
        if bf16:
            optimizer = paddle.static.amp.bf16.decorate_bf16(optimizer, use_pure_bf16=True)
        optimizer.minimize(loss)
    executor = paddle.static.Executor(paddle.CPUPlace())
    executor.run(startup)
    if bf16:
        optimizer.amp_init(paddle.CPUPlace(), scope=paddle.static.global_scope())
    rng = np.random.default_rng(0)
    feed = {"images": rng.standard_normal((batch, 3, 32, 32)).astype("float32"),
            "labels": rng.integers(0, 10, batch).astype("int64")}
    return lambda: float(executor.run(main, feed=feed, fetch_list=[loss])[0])


def dygraph_step(name: str, batch: int):
    import paddle
    import paddle.nn.functional as F

    from paddle_resnet.models import build_model
    paddle.seed(0)
    model = build_model(name)
    optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    images, labels = paddle.randn([batch, 3, 32, 32]), paddle.randint(0, 10, [batch])

    def step():
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return float(loss)
    return step


def worker(variant: str, name: str, batch: int, steps: int) -> float:
    from paddle_resnet.runtime import prepare_process
    prepare_process()  # MKL's fast path on AMD, as every run of the package
    step = (dygraph_step(name, batch) if variant == "dygraph"
            else static_step(name, batch, bf16=variant.endswith("bf16")))
    for index in range(WARMUP + steps):
        if index == WARMUP:
            start = time.perf_counter()
        step()
    return batch * steps / (time.perf_counter() - start)


def measure(variant: str, name: str, batch: int, steps: int):
    """images/s of one variant in a fresh process, or Paddle's last error line."""
    with tempfile.TemporaryDirectory() as work:
        result = os.path.join(work, "result.json")
        env = {**os.environ, **VARIANTS[variant]}
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", variant,
                               "--models", name, "--batch", str(batch), "--steps", str(steps),
                               "--result", result], cwd=ROOT, capture_output=True, text=True,
                              env=env)
        if done.returncode != 0 or not os.path.exists(result):
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if "Error" in line or "error" in line]
            return (errors or lines or ["no output"])[-1][:160]
        with open(result, encoding="utf-8") as f:
            return json.load(f)["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "plain20"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_argument(parser)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        rate = worker(args.worker, args.models[0], args.batch, args.steps)
        with open(args.result, "w", encoding="utf-8") as f:
            json.dump({"images_per_s": rate}, f)
        return
    rows = []
    for name in args.models:
        runs = {variant: [] for variant in VARIANTS}
        for _ in range(args.repeats):
            for variant in VARIANTS:  # interleaved: drift hits every variant alike
                runs[variant].append(measure(variant, name, args.batch, args.steps))
        base = statistics.median(runs["dygraph"])
        print(f"\n| {name}, batch {args.batch}, 1 process, {args.steps} steps x "
              f"{args.repeats} | images/s (median) | runs | vs dygraph |")
        print("|---|---:|---|---:|")
        for variant, values in runs.items():
            numbers = [v for v in values if isinstance(v, float)]
            if len(numbers) < len(values):
                failure = next(v for v in values if isinstance(v, str))
                print(f"| {variant} | fails | `{failure}` | |")
                rows.append({"model": name, "variant": variant, "error": failure})
                continue
            median = statistics.median(numbers)
            print(f"| {variant} | {median:.1f} | {', '.join(f'{v:.0f}' for v in numbers)} | "
                  f"{median / base:.2f}x |", flush=True)
            rows.append({"model": name, "variant": variant, "images_per_s": median,
                         "runs": numbers, "vs_dygraph": median / base})
    write_json(args.json, {"batch": args.batch, "steps": args.steps, "rows": rows})


if __name__ == "__main__":
    main()
