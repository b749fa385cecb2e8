"""The oneDNN operators tried once, on a tiny network, before a run relies on them.

oneDNN picks a kernel for each primitive when it first makes it, and may refuse to make
one: bf16 under an ISA cap it reads from the environment, a Paddle build whose oneDNN
lacks a kernel the headers promise, a CPU it has no implementation for. The operator then
raises at the run's first step, after the data was read and the workers launched.
`failure(...)` runs every operator a plan would use, forward and backward, on two 16x16
images through the package's own layers and switching functions, so that a refusal
becomes the plan's fallback and its one-line note (speed/__init__.py) instead.

The trial's primitives are tiny and cached apart from the run's (the cache is keyed by
shape), and Paddle's random state is restored after it, so a run's initial weights and
batches are those it would have without the trial.
"""
import functools
from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn

from ..models.densenet import DenseLayer, Transition
from ..models.layers import conv3x3
from ..models.resnet import BasicBlock, Bottleneck, ProjectionShortcut, ShortcutA
from .apply import apply_speed


def trial_network() -> nn.Sequential:
    """Every layer kind the speed paths switch, in NHWC: a 3-channel stem, basic blocks
    with each shortcut (identity, option A, none, projection), a bottleneck, a dense layer
    with and without its bottleneck, and a transition."""
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


@functools.lru_cache(maxsize=None)
def failure(plan) -> Optional[str]:
    """None where a training pass of `trial_network()` under the oneDNN plan `plan` (a
    SpeedPlan) runs; else the first line of what stopped it. Once per plan and process:
    the same operators behave the same way on the same machine."""
    state = paddle.get_rng_state()
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
    finally:
        paddle.set_rng_state(state)
    return None
