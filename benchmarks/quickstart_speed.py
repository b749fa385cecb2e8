"""Training speed as a user meets it: the README's quickstart command against the same
training in PyTorch, timed from outside the package.

    pip install torch==2.13.0
    python benchmarks/quickstart_speed.py --data-file cifar-10-python.tar.gz

Each variant is a whole command, run twice per repeat with the same settings except the
number of training images (one epoch of `--small`, then of `--large` images). The
difference of the two wall times is the time of the extra training iterations only:
start-up, data loading and evaluation cancel out. One run of each variant before the
repeats is not timed (compiling and caching happen once). Variants, interleaved over
repeats:

- `paddle_resnet (default)`: `tools/train.py -c configs/quickstart.yaml`, nothing else
  changed (on a CPU: one process per core, oneDNN convolutions in NHWC, MKL's fast path
  on AMD);
- `paddle_resnet conv=paddle`: the default with `-o speed.conv=paddle` (Paddle's own
  convolution, NCHW: the default before 2026-12-01);
- `paddle_resnet conv_bf16`: the default with `-o speed.conv_bf16=true` (the oneDNN
  convolutions on bfloat16 copies of their inputs);
- `paddle_resnet fused_block`: the default with `-o speed.fused_block=true` (each basic
  block's training pass as one operator; the default);
- `paddle_resnet per_layer`: the default with `-o speed.fused_block=false` (the blocks
  layer by layer, the default before 2026-12-03);
- `paddle_resnet --nproc 1`: the default in one process with a thread per core;
- `paddle_resnet DataParallel`: the default with `-o dist.shared_memory=false` (the
  processes average their gradients through Paddle's DataParallel over gloo, the default
  before 2026-12-05);
- `paddle_resnet before`: one process with MKL's fast path off and Paddle's convolution,
  the default before this package set any speed path;
- `torch`: benchmarks/torch_twin.py, the same model, data, augmentation and optimizer in
  PyTorch with its default threads (every core);
- `torch channels_last`: the same in `torch.channels_last`;
- `torch channels_last bf16`: that, with forward and loss under
  `torch.autocast("cpu", torch.bfloat16)`: PyTorch's fastest CPU training setting.

`--checkout DIR` adds the default of another checkout of this repository (another commit,
e.g. `git worktree add /tmp/before HEAD~1`) as the variant `paddle_resnet (default) at
DIR`, so that a change is timed against what it changes in the same run.

`--as-avx2-host` runs every variant as on a CPU whose widest vector extension is AVX2
(the project's Zen 3 host): oneDNN's kernels, in Paddle and in PyTorch, are limited to
AVX2 through their documented `ONEDNN_MAX_CPU_ISA`, which also has the package compile its
own passes for AVX2 (a build of its own, `onednn_build.vector_target`), PyTorch's own
kernels through `ATEN_CPU_CAPABILITY`, and the package convolves in float32
(`speed.conv_bf16=false`, the plan its default makes where the CPU has no bf16 kernels).
Wider cores running AVX2 code are not a Zen 3, so this gives the ratio, not an AVX2 host's
images/s. MKL is left
as it is: the package's fast path already points it at its AVX2 kernels on AMD CPUs
(`paddle_resnet/speed/mkl.py`), and PyTorch's ResNet-20 step barely calls it.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from from_outside import rate_of_difference
from results_file import add_json_argument, write_json
from torch_python import require_torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ["paddle_resnet (default)", "paddle_resnet conv_bf16", "paddle_resnet fused_block",
            "paddle_resnet per_layer",
            "paddle_resnet conv=paddle",
            "paddle_resnet --nproc 1", "paddle_resnet DataParallel",
            "paddle_resnet before", "torch", "torch channels_last", "torch channels_last bf16"]
SINGLE_PROCESS = ("paddle_resnet --nproc 1", "paddle_resnet before")
BF16_VARIANTS = ("paddle_resnet conv_bf16", "torch channels_last bf16")
# The kernels of a CPU without AVX-512: oneDNN's dispatch limit (Paddle's and PyTorch's
# builds read it when their first primitive is made) and PyTorch's ATen dispatch.
AVX2_HOST_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def checkout_variant(directory: str) -> str:
    return f"paddle_resnet (default) at {directory}"


def command(variant: str, data_file: str, images: int, test_images: int, out: str,
            torch_python: str = sys.executable, as_avx2_host: bool = False, root: str = ROOT):
    """The variant's command line and its environment (on top of this one's); `root` is
    the checkout whose tools/train.py runs, and whose package its processes import."""
    env = dict(AVX2_HOST_ENV) if as_avx2_host else {}
    if root != ROOT:
        env["PYTHONPATH"] = root  # ahead of this checkout's editable install
    if variant.startswith("torch"):
        layout = (["--channels-last"] if variant.startswith("torch channels_last") else []) + (
            ["--bf16-autocast"] if variant.endswith("bf16") else [])
        return [torch_python, os.path.join(ROOT, "benchmarks", "torch_twin.py"),
                "--data-file", data_file, "--epochs", "1", "--train-samples", str(images),
                "--test-samples", str(test_images), *layout], env
    args = [sys.executable, os.path.join(root, "tools", "train.py"), "-c",
            "configs/quickstart.yaml", "-o", f"data.data_file={data_file}",
            "-o", f"data.train_samples={images}", "-o", f"data.test_samples={test_images}",
            "-o", "train.epochs=1", "-o", f"output_dir={out}"]
    if as_avx2_host:
        args += ["-o", "speed.conv_bf16=false"]
    if variant in ("paddle_resnet conv=paddle", "paddle_resnet before"):
        args += ["-o", "speed.conv=paddle"]
    if variant == "paddle_resnet conv_bf16":
        args += ["-o", "speed.conv_bf16=true"]
    if variant == "paddle_resnet fused_block":
        args += ["-o", "speed.fused_block=true"]
    if variant == "paddle_resnet per_layer":
        args += ["-o", "speed.fused_block=false"]
    if variant == "paddle_resnet DataParallel":
        args += ["-o", "dist.shared_memory=false"]
    if variant in SINGLE_PROCESS:
        args += ["--nproc", "1"]
    if variant == "paddle_resnet before":
        env["PADDLE_RESNET_MKL_FAST_PATH"] = "0"
    return args, env


def wall_time(variant, data_file, images, test_images, torch_python,
              as_avx2_host: bool = False, root: str = ROOT) -> float:
    with tempfile.TemporaryDirectory() as work:
        args, env = command(variant, data_file, images, test_images, os.path.join(work, "run"),
                            torch_python, as_avx2_host, root)
        environ = {k: v for k, v in os.environ.items()
                   if k != "MKL_DEBUG_CPU_TYPE" and not k.startswith("MALLOC_")}
        environ.update(env)
        start = time.perf_counter()
        # A session of its own, killed whole on the way out: a benchmark stopped halfway
        # must not leave training processes running under the next measurement.
        process = subprocess.Popen(args, cwd=root, env=environ, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = process.communicate()
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{err[-2000:]}")
    return seconds


def exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through wall_time's clean-up


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", required=True)
    p.add_argument("--small", type=int, default=1280, help="training images, short run")
    p.add_argument("--large", type=int, default=5120, help="training images, long run")
    p.add_argument("--test-images", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    p.add_argument("--torch-python", default=sys.executable,
                   help="the Python that has PyTorch (e.g. a venv's), for the torch variants")
    p.add_argument("--checkout", action="append", default=[], metavar="DIR",
                   help="also time the default of this other checkout of the repository "
                        "(repeatable), as the variant 'paddle_resnet (default) at DIR'")
    p.add_argument("--baseline", default="torch",
                   help="the variant every ratio is against")
    p.add_argument("--as-avx2-host", action="store_true",
                   help="every variant on AVX2 kernels, the package in float32 (see above)")
    add_json_argument(p)
    args = p.parse_args()
    if not os.path.isfile(args.data_file):
        p.error(f"--data-file {args.data_file} does not exist")
    if not 0 < args.small < args.large:
        p.error(f"--small {args.small} and --large {args.large}: need 0 < small < large "
                "(the rate is that of the difference)")
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats} must be at least 1")
    roots = dict.fromkeys(args.variants, ROOT)
    for directory in args.checkout:
        if not os.path.isfile(os.path.join(directory, "tools", "train.py")):
            p.error(f"--checkout {directory} is not a checkout of this repository (no "
                    "tools/train.py)")
        roots[checkout_variant(directory)] = os.path.abspath(directory)
    if args.baseline not in VARIANTS and args.baseline not in roots:
        p.error(f"--baseline {args.baseline!r} is not a variant; choose from "
                f"{', '.join(VARIANTS + [v for v in roots if v not in VARIANTS])}")
    args.variants = list(roots)
    bf16_asked = [v for v in args.variants if v in BF16_VARIANTS]
    if args.as_avx2_host and bf16_asked:
        p.error(f"--as-avx2-host has no bf16 kernels; leave out {', '.join(bf16_asked)}")
    if any(variant.startswith("torch") for variant in args.variants):
        require_torch(p, args.torch_python)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, exit_on_signal)
    # Once each, untimed: a checkout's first run compiles the package's operators and
    # caches the decoded archive (on 2026-12-05 a first 1,280-image run took 65.9 s, the
    # next ones 9-11 s), which would make that repeat's difference meaningless.
    for variant in args.variants:
        wall_time(variant, args.data_file, args.small, args.test_images, args.torch_python,
                  args.as_avx2_host, roots[variant])
    rates = {v: [] for v in args.variants}
    for repeat in range(args.repeats):
        for variant in args.variants:  # interleaved: drift hits every variant alike
            rates[variant].append(rate_of_difference(
                f"repeat {repeat + 1}: {variant}", args.small, args.large,
                lambda images: wall_time(variant, args.data_file, images, args.test_images,
                                         args.torch_python, args.as_avx2_host,
                                         roots[variant])))
    base = args.baseline
    base_rate = statistics.median(rates[base]) if base in rates else None
    host = " as on an AVX2 host" if args.as_avx2_host else ""
    print(f"\n| ResNet-20 quickstart training{host}, {args.large - args.small} images timed "
          f"from outside, x {args.repeats} | images/s (median) | runs | vs {base} "
          f"| vs {base}, per repeat (median) |")
    print("|---|---:|---|---:|---:|")
    rows = []
    for variant, values in rates.items():
        median = statistics.median(values)
        ratio = median / base_rate if base_rate else None
        # Each repeat runs every variant back to back, so its own ratio cancels the drift
        # of the machine between repeats.
        paired = ([v / t for v, t in zip(values, rates[base])] if base_rate else None)
        rows.append({"variant": variant, "images_per_s": median, "runs": values,
                     "baseline": base, "vs_baseline": ratio, "vs_baseline_per_repeat": paired})
        print(f"| {variant} | {median:,.1f} | {', '.join(f'{v:.0f}' for v in values)} | "
              + (f"{ratio:.2f}x | {statistics.median(paired):.2f}x "
                 f"({min(paired):.2f}-{max(paired):.2f}) |" if ratio else "- | - |"))
    write_json(args.json, {"cpu_count": os.cpu_count(), "small": args.small, "large": args.large,
                           "repeats": args.repeats, "as_avx2_host": args.as_avx2_host,
                           "environment": AVX2_HOST_ENV if args.as_avx2_host else {},
                           "rows": rows})


if __name__ == "__main__":
    main()
