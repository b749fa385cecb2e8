"""Page faults and kernel time per training step: in the bare step the other benchmarks
time (speed_paths.py, profile_step.py, frameworks.py), with glibc's defaults and with
freed memory kept (steady_memory.py, what those benchmarks now do), and in the README's
quickstart training run, as a user runs it, from outside.

    python benchmarks/page_faults.py --data-file ../shared/data/cifar10-lossless.tar.xz

Bare step: one process, the default speed plan for one of `--processes` processes,
`--steps` steps after two warm-up steps, counted with getrusage. Quickstart: the whole
`tools/train.py -c configs/quickstart.yaml` process tree, run with `--small` and with
`--large` training images; the difference of the two runs' counts (every process of the
tree, read from /proc) divided by the difference of their iterations is the cost of one more
iteration of the run (all its processes), start-up and evaluation cancelled out. Counts are
deterministic enough to read from one run; the times beside them are not (the machine is
shared).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bare_step(steps: int, processes: int, batch: int, keep: bool):
    """Runs in a worker process: the counts of `steps` default training steps."""
    sys.path.insert(0, ROOT)
    from paddle_resnet.runtime import prepare_process
    from steady_memory import keep_freed_memory

    prepare_process()
    if keep:
        keep_freed_memory()
    import paddle

    from paddle_resnet.engine.step import speed_options, train_step, training_model
    from paddle_resnet.models.layers import batch_shape
    from paddle_resnet.speed import plan_speed
    plan = plan_speed(speed_options([]), "cpu", processes, say=lambda line: None)
    paddle.seed(0)
    model = training_model("resnet20", plan)
    optimizer = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())
    images = paddle.randn(batch_shape(batch, plan.data_format))
    labels = paddle.randint(0, 10, [batch])
    for _ in range(2):
        train_step(model, images, labels, optimizer)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        loss, _ = train_step(model, images, labels, optimizer)
    float(loss)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"faults": (after.ru_minflt - before.ru_minflt) / steps,
            "kernel_ms": (after.ru_stime - before.ru_stime) * 1000 / steps,
            "wall_ms": wall * 1000 / steps}


def process_counts():
    """pid -> (parent pid, minor faults, kernel seconds) of every process in /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    counts = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after the command's name
        except OSError:  # gone meanwhile
            continue
        # stat(5): state, ppid, ..., minflt is field 10 and stime field 15 (1-based).
        counts[int(entry)] = (int(fields[1]), int(fields[7]), int(fields[12]) / ticks)
    return counts


def counted(command, env, every: float = 0.1):
    """Minor faults and kernel seconds of a command's whole process tree, and its wall time.
    getrusage cannot see the training processes (the launcher does not reap them), so
    /proc is read every `every` seconds and each process's last reading is kept; what a
    process does in its last `every` seconds is missed alike in the small and large runs."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    tree, last = {process.pid}, {}
    while process.poll() is None:
        for pid, (parent, faults, kernel) in process_counts().items():
            if parent in tree:
                tree.add(pid)
            if pid in tree:
                last[pid] = (faults, kernel)
        time.sleep(every)
    out, err = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-2000:]}")
    return (sum(f for f, _ in last.values()), sum(k for _, k in last.values()), wall, out)


def quickstart_batch() -> int:
    import yaml
    with open(os.path.join(ROOT, "configs", "quickstart.yaml"), encoding="utf-8") as f:
        return int(yaml.safe_load(f)["train"]["batch_size"])


def quickstart(data_file: str, images: int, env, work: str):
    command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c",
               "configs/quickstart.yaml", "-o", f"data.data_file={data_file}",
               "-o", f"data.train_samples={images}", "-o", "data.test_samples=2000",
               "-o", "train.epochs=1", "-o", f"output_dir={os.path.join(work, str(images))}"]
    return counted(command, env)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", help="CIFAR-10 archive for the quickstart rows (omit: "
                                       "bare step only)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--batch", type=int, default=64, help="the bare step's batch")
    p.add_argument("--small", type=int, default=2560)
    p.add_argument("--large", type=int, default=10240)
    p.add_argument("--json", default="benchmarks/results/page_faults.json")
    p.add_argument("--worker", choices=["glibc", "kept"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(bare_step(args.steps, args.processes, args.batch,
                                   args.worker == "kept")))
        return
    if args.data_file and not os.path.isfile(args.data_file):
        p.error(f"--data-file {args.data_file} does not exist")
    if not 0 < args.small < args.large:
        p.error(f"--small {args.small} and --large {args.large}: need 0 < small < large")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    rows = []
    for memory in ("glibc", "kept"):
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", memory,
                               "--steps", str(args.steps), "--processes", str(args.processes),
                               "--batch", str(args.batch)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"bare step ({memory}) failed:\n{done.stderr[-2000:]}")
        rows.append({"where": f"bare step, batch {args.batch}, 1 of {args.processes} "
                              "processes",
                     "memory": "glibc's defaults" if memory == "glibc" else "kept",
                     **json.loads(done.stdout.strip().splitlines()[-1])})
    if args.data_file:
        with tempfile.TemporaryDirectory() as work:
            small = quickstart(args.data_file, args.small, env, work)
            large = quickstart(args.data_file, args.large, env, work)
        # One iteration of the run: every process's share of one global batch.
        iterations = (args.large - args.small) / quickstart_batch()
        rows.append({"where": "quickstart run, per iteration (all its processes)",
                     "memory": "glibc's defaults", "faults": (large[0] - small[0]) / iterations,
                     "kernel_ms": (large[1] - small[1]) * 1000 / iterations,
                     "wall_ms": (large[2] - small[2]) * 1000 / iterations})
    print("| where | freed memory | minor page faults per step | kernel ms per step "
          "| wall ms per step |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['where']} | {row['memory']} | {row['faults']:,.0f} | "
              f"{row['kernel_ms']:.1f} | {row['wall_ms']:.1f} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"cpu_count": os.cpu_count(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
