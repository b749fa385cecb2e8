"""Page faults and kernel time per training step, with glibc's defaults
(`PADDLE_RESNET_KEEP_MEMORY=0`) and with freed memory kept (the default,
paddle_resnet/speed/malloc.py): in the bare step the other benchmarks time (speed_paths.py,
profile_step.py, frameworks.py), and in a full-data training run as a user runs it, from
outside.

    python benchmarks/page_faults.py --data-file ../shared/data/cifar10-lossless.tar.xz

Bare step: one process, the default speed plan for one of `--processes` processes,
`--steps` steps after two warm-up steps, counted with getrusage. Run: the whole
`tools/train.py -c CONFIG` process tree (`--config`) on all of the training and test images (a
`data.*_samples` cut frees the full array it was cut from, which moves glibc's thresholds
up and hides the faults), for one epoch and for two, evaluated only after the last; the
difference of the two runs' counts (every process of the tree, read from /proc) divided by
one epoch's iterations is the cost of one more iteration before the first evaluation (all
its processes), start-up and evaluation cancelled out. Counts are deterministic enough to
read from one run; the times beside them are not (the machine is shared), so the runs of
the two settings alternate over `--repeats`.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bare_step(steps: int, processes: int, batch: int):
    """Runs in a worker process: the counts of `steps` default training steps."""
    sys.path.insert(0, ROOT)
    from paddle_resnet.runtime import prepare_process

    prepare_process()  # freed memory kept unless PADDLE_RESNET_KEEP_MEMORY=0
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


MEMORY = {"glibc's defaults": "0", "kept (the default)": "1"}  # PADDLE_RESNET_KEEP_MEMORY


def iterations_per_epoch(config: str) -> int:
    sys.path.insert(0, ROOT)
    from paddle_resnet.config import load_config
    batch = load_config(os.path.join(ROOT, config), [])["train.batch_size"]
    return 50000 // batch  # CIFAR-10's training set; the ragged last batch is dropped


def full_run(config: str, data_file: str, epochs: int, env, out: str):
    command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", config,
               "-o", f"data.data_file={data_file}", "-o", f"train.epochs={epochs}",
               "-o", f"train.eval_every={epochs}",
               "-o", f"output_dir={out}"]
    return counted(command, env)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", help="CIFAR-10 archive for the run rows (omit: bare step "
                                       "only)")
    p.add_argument("--config", default="configs/resnet20_onecycle30_flip.yaml",
                   help="the run's config, on all of CIFAR-10")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--batch", type=int, default=64, help="the bare step's batch")
    p.add_argument("--repeats", type=int, default=1, help="run pairs per setting")
    add_json_argument(p)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(bare_step(args.steps, args.processes, args.batch)))
        return
    if args.data_file and not os.path.isfile(args.data_file):
        p.error(f"--data-file {args.data_file} does not exist")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    rows = []
    for memory, switch in MEMORY.items():
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                               "--steps", str(args.steps), "--processes", str(args.processes),
                               "--batch", str(args.batch)], cwd=ROOT,
                              env=dict(base, PADDLE_RESNET_KEEP_MEMORY=switch),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"bare step ({memory}) failed:\n{done.stderr[-2000:]}")
        rows.append({"where": f"bare step, batch {args.batch}, 1 of {args.processes} "
                              "processes", "memory": memory,
                     **json.loads(done.stdout.strip().splitlines()[-1])})
    if args.data_file:
        iterations = iterations_per_epoch(args.config)
        per_iteration = {memory: [] for memory in MEMORY}
        with tempfile.TemporaryDirectory() as work:
            for repeat in range(args.repeats):
                for memory, switch in MEMORY.items():
                    env = dict(base, PADDLE_RESNET_KEEP_MEMORY=switch)
                    one, two = (full_run(args.config, args.data_file, epochs, env,
                                         os.path.join(work, f"{switch}-{repeat}-{epochs}"))
                                for epochs in (1, 2))
                    per_iteration[memory].append([(b - a) / iterations
                                                  for a, b in zip(one[:3], two[:3])])
        for memory, repeats in per_iteration.items():
            rows.append({"where": f"`{args.config}` on all of CIFAR-10, per iteration "
                                  "before the first evaluation (all its processes)",
                         "memory": memory,
                         "faults": sum(r[0] for r in repeats) / len(repeats),
                         "kernel_ms": sum(r[1] for r in repeats) * 1000 / len(repeats),
                         "wall_ms": sum(r[2] for r in repeats) * 1000 / len(repeats),
                         "wall_ms_each": [r[2] * 1000 for r in repeats]})
    print("| where | freed memory | minor page faults per step | kernel ms per step "
          "| wall ms per step |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['where']} | {row['memory']} | {row['faults']:,.0f} | "
              f"{row['kernel_ms']:.1f} | {row['wall_ms']:.1f} |")
    write_json(args.json, {"cpu_count": os.cpu_count(), "command": " ".join(sys.argv),
                           "rows": rows})


if __name__ == "__main__":
    main()
