"""Reading oneDNN's own timing (`ONEDNN_VERBOSE=1`) of a worker that prints TIMED after
its warm-up steps: what profile_step.py's and onednn_kernels.py's workers share. Paddle's
and PyTorch's oneDNN print the same `onednn_verbose,v1,primitive,exec,...` lines."""
from collections import defaultdict

WARMUP, STEPS = 2, 3
TIMED = "--- timed steps ---"  # what a worker prints after its warm-up


def primitive_calls(lines):
    """(ms per step, calls per step) of each oneDNN primitive, keyed by (kind and
    direction, shape; convolutions only have a shape), from the `exec` lines after TIMED."""
    per_primitive, timed = defaultdict(lambda: [0.0, 0]), False
    for line in lines:
        if line == TIMED:
            timed = True
        fields = line.split(",")
        if not timed or fields[:4] != ["onednn_verbose", "v1", "primitive", "exec"]:
            continue
        kind, direction, shape = fields[5], fields[7], fields[-2]
        name = f"{kind} {direction}" if direction != "undef" else kind
        entry = per_primitive[(name, shape if kind == "convolution" else "")]
        entry[0] += float(fields[-1])
        entry[1] += 1
    return {key: (ms / STEPS, calls / STEPS) for key, (ms, calls) in per_primitive.items()}


def primitive_times(lines):
    """ms per step of each oneDNN primitive (primitive_calls without the counts)."""
    return {key: ms for key, (ms, _) in primitive_calls(lines).items()}
