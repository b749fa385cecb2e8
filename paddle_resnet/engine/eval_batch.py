"""How many test images an evaluation batch holds (`eval.batch_size`, 0 = chosen here).

On a CPU the choice is about glibc, not arithmetic. glibc serves every block at or above
its mmap threshold (32 MiB at most, speed/malloc.py) with a fresh `mmap` and unmaps it
when it is freed, so an activation that large is faulted in page by page again in every
batch. DenseNet-40's first dense block ends on 160 channels of 32x32, 640 KiB an image:
at the 256 images a batch held before, those tensors were 160 MiB each, and tools/eval.py
spent more of its time faulting pages than computing (benchmarks/eval_batch.py,
docs/performance.md: 84 images/s at 256, 164 at the 16 chosen here, 2026-12-05).
ResNet-20's widest activation is 64 KiB an image and it keeps 256, so one number cannot
serve every model: each process takes the largest power of two whose widest activation
stays under half the threshold (the other half is room for oneDNN's channel-padded copies
and the temporaries beside them), at most its share of `max(train.batch_size, 256)`, the
batch evaluation always had. On a GPU that share is kept as it was.
"""
import paddle

from ..models.layers import batch_shape
from ..speed.malloc import MMAP_THRESHOLD

DEFAULT_CEILING = 256
FLOAT32_BYTES = 4


def widest_activation_bytes(model: paddle.nn.Layer) -> int:
    """The largest output of any layer of `model` for one float32 image, in bytes: one
    forward pass (a batch in the model's `input_format`) in eval mode without gradients;
    the model's mode is left as it was."""
    widest = [0]

    def record(layer, inputs, output):
        for tensor in output if isinstance(output, (list, tuple)) else [output]:
            if isinstance(tensor, paddle.Tensor):
                widest[0] = max(widest[0], int(tensor.numel()) * FLOAT32_BYTES)

    handles = [layer.register_forward_post_hook(record)
               for layer in model.sublayers(include_self=True)]
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(batch_shape(1, getattr(model, "input_format", "NCHW"))))
    finally:
        for handle in handles:
            handle.remove()
        model.train() if was_training else model.eval()  # Paddle < 3.3: train() takes no mode
    return widest[0]


def per_process_batch(widest_bytes: int, share: int) -> int:
    """The largest power of two, at most `share`, whose images' widest activation
    (`widest_bytes` each) stays under half of glibc's mmap threshold; at least 1."""
    fits = max(1, (MMAP_THRESHOLD // 2) // max(1, widest_bytes))
    per_process = 1
    while per_process * 2 <= min(share, fits):
        per_process *= 2
    return per_process


def eval_batch_size(requested: int, world: int, place: str, model: paddle.nn.Layer,
                    train_batch: int = 0) -> int:
    """The global evaluation batch (each of `world` processes takes its share):
    `requested` if it is not 0 (preflight.check_batch has checked it), else the module
    docstring's choice, for which a CPU measures `model` once."""
    if requested:
        return requested
    share = max(train_batch, DEFAULT_CEILING) // world
    if place != "cpu":
        return share * world
    return per_process_batch(widest_activation_bytes(model), share) * world
