"""Peak memory of a training step and of evaluation, per model and batch size: the peak
resident set size of a fresh process (and the peak GPU memory Paddle allocated, where a
GPU exists), each measured in its own process so that peaks do not carry over.

    python benchmarks/memory.py --models resnet20 resnet56 resnet18 densenet40_k12 \
        --batches 64 128 256
"""
import argparse
import json
import os
import resource
import subprocess
import sys

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STEPS = 2


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(name: str, batch: int, mode: str) -> dict:
    import paddle

    from paddle_resnet.runtime import prepare_process

    prepare_process()  # MKL's fast path on AMD, as every run of the package
    from paddle_resnet.device import cuda_devices
    from paddle_resnet.engine.eval_engine import eval_forward
    from paddle_resnet.engine.step import train_step
    from paddle_resnet.models import build_model
    place = "gpu:0" if cuda_devices() else "cpu"
    paddle.device.set_device(place)
    paddle.seed(0)
    model = build_model(name)
    images = paddle.randn([batch, 3, 32, 32])
    labels = paddle.randint(0, 10, [batch])
    before = peak_rss_mib()
    if mode == "train":
        optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
        for _ in range(STEPS):
            train_step(model, images, labels, optimizer)
    else:
        engine = "dygraph" if mode == "eval dygraph" else "auto"
        model.eval()
        with paddle.no_grad(), eval_forward(model, engine, place, 1) as forward:
            for _ in range(STEPS):
                forward(images).numpy()
    result = {"peak_rss_mib": peak_rss_mib(), "model_rss_mib": before}
    if place.startswith("gpu"):
        result["peak_gpu_mib"] = paddle.device.cuda.max_memory_allocated() / 2**20
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "resnet18",
                                                        "densenet40_k12"])
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--modes", nargs="+", default=["train", "eval dygraph", "eval"])
    add_json_argument(parser)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, batch, mode = args.worker
        print(json.dumps(worker(name, int(batch), mode)))
        return
    rows = []
    print("| model | batch | mode | peak RSS (MiB) | RSS before the first step (MiB) |"
          " peak GPU (MiB) |")
    print("|---|---:|---|---:|---:|---:|")
    for name in args.models:
        for batch in args.batches:
            for mode in args.modes:
                done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                                       name, str(batch), mode], cwd=ROOT, capture_output=True,
                                      text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"{name} batch {batch} {mode}:\n{done.stderr[-2000:]}")
                row = {"model": name, "batch": batch, "mode": mode,
                       **json.loads(done.stdout.strip().splitlines()[-1])}
                rows.append(row)
                gpu = f"{row['peak_gpu_mib']:,.0f}" if "peak_gpu_mib" in row else "-"
                print(f"| {name} | {batch} | {mode} | {row['peak_rss_mib']:,.0f} | "
                      f"{row['model_rss_mib']:,.0f} | {gpu} |", flush=True)
    write_json(args.json, {"cpu_count": os.cpu_count(), "rows": rows})


if __name__ == "__main__":
    main()
