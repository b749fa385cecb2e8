"""The oneDNN operators tried once, on a tiny network, before runs rely on them.

oneDNN picks a kernel for each primitive when it first makes it, and may refuse to make
one: bf16 under an ISA cap it reads from the environment, a Paddle build whose oneDNN
lacks a kernel the headers promise, a CPU it has no implementation for. The operator then
raises at the run's first step, after the data was read and the workers launched.
`failure(plan)` runs every operator a plan would use, forward and backward, on two 16x16
images through the package's own layers and switching functions, so that a refusal
becomes the plan's fallback and its one-line note (speed/__init__.py) instead.

The trial runs in a child process: a crash of oneDNN there is a verdict too, and the run's
own process keeps nothing of it (primitives, memory, random state; in-process, its frees
moved glibc's allocation thresholds and so a run's page faults). The verdict is kept beside
the built library, keyed by the plan, the CPU and the environment oneDNN and OpenMP read,
so each machine pays the child's ~1 s once per plan, like the build.
"""
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Optional, Tuple

# The environment that can change what oneDNN makes: its own variables (ISA cap, verbose,
# math mode) and the OpenMP runtimes'.
ENVIRONMENT_PREFIXES = ("ONEDNN_", "DNNL_", "OMP_", "KMP_", "GOMP_")
VERDICTS = "trials"  # the folder beside the built library
TRIAL_TIMEOUT = 300  # seconds; the child takes ~1 s here, most of it importing Paddle


def trial_network():
    """Every layer kind the speed paths switch, in NHWC: a 3-channel stem, basic blocks
    with each shortcut (identity, option A, none, projection), a bottleneck, a dense layer
    with and without its bottleneck, and a transition."""
    import paddle.nn as nn
    from ..models.densenet import DenseLayer, Transition
    from ..models.layers import conv3x3
    from ..models.resnet import BasicBlock, Bottleneck, ProjectionShortcut, ShortcutA
    nhwc = {"data_format": "NHWC"}
    return nn.Sequential(
        conv3x3(3, 8, **nhwc),
        BasicBlock(8, 8, 1, nn.Identity(), **nhwc),
        BasicBlock(8, 16, 2, ShortcutA(8, 16, 2, **nhwc), **nhwc),
        BasicBlock(16, 16, 1, None, **nhwc),
        BasicBlock(16, 32, 2, ProjectionShortcut(16, 32, 2, **nhwc), **nhwc),
        Bottleneck(32, 8, 1, nn.Identity(), **nhwc),
        DenseLayer(32, 4, False, **nhwc),
        DenseLayer(36, 4, True, **nhwc),
        Transition(40, 20, **nhwc))


def run_trial(plan) -> Optional[str]:
    """A training pass of `trial_network()` under the oneDNN plan `plan` (a SpeedPlan) in
    this process: None where it runs, else the first line of what stopped it."""
    import numpy as np
    import paddle
    from .apply import apply_speed
    from .threads import use_threads
    use_threads(plan.threads)
    try:
        network = trial_network()
        apply_speed(network, plan)
        network.train()
        images = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
        x = paddle.to_tensor(images, stop_gradient=False)  # the stem's input gradient too
        network(x).mean().backward()
    # Any error is the operators' (a refused primitive is an OSError, Paddle's checks
    # raise its own types): the run then takes the next path rather than die at step 1.
    except Exception as e:
        return (str(e).strip().splitlines() or [type(e).__name__])[0]
    return None


_CHILD = """
import json, sys
from paddle_resnet.speed import SpeedPlan
from paddle_resnet.speed.trial import run_trial
fields = json.loads(sys.argv[1])
fields["fused_paths"] = tuple(fields["fused_paths"])
print(json.dumps({"failure": run_trial(SpeedPlan(**fields))}))
"""


def _cpu() -> str:
    from ..cpu import _cpuinfo
    info = _cpuinfo()
    return f"{info.get('model name', '')}|{info.get('flags', '')}"


def _verdict_path(plan, fields: dict) -> str:
    environment = sorted((k, v) for k, v in os.environ.items()
                         if k.startswith(ENVIRONMENT_PREFIXES))
    key = json.dumps([fields, _cpu(), environment], sort_keys=True)
    return os.path.join(os.path.dirname(plan.library), VERDICTS,
                        hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")


def _in_child(fields: dict) -> Tuple[Optional[str], bool]:
    """(the verdict, whether it is the trial's own and may be kept): a crash or a timeout
    is a failure for this run, and is tried again by the next."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(fields)], env=env,
                              capture_output=True, text=True, timeout=TRIAL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"the trial process did not finish within {TRIAL_TIMEOUT} s", False
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])["failure"], True
    except (IndexError, ValueError, KeyError, TypeError):
        pass
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return f"the trial process was killed by {name}", False
    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
    return f"the trial process exited with status {done.returncode}: {last}", False


def failure(plan) -> Optional[str]:
    """None where a training pass of `trial_network()` under the oneDNN plan `plan` (a
    SpeedPlan) runs; else the first line of what stopped it: from this machine's verdict
    for the plan, or from a child process that runs the trial and leaves one."""
    fields = {k: v for k, v in dataclasses.asdict(plan).items() if k not in ("note",)}
    path = _verdict_path(plan, fields)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["failure"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    verdict, keep = _in_child(fields)
    if not keep:
        return verdict
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), suffix=".tmp",
                                         delete=False, encoding="utf-8") as f:
            json.dump({"failure": verdict}, f)
        os.replace(f.name, path)  # atomic: another process reads no verdict or a whole one
    except OSError:
        pass  # a cache that cannot be written costs the next run another trial
    return verdict
