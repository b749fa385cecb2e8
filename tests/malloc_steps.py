"""ResNet-20 training steps as a run takes them (the default speed plan, batch 64) on
fixed random data; prints, as JSON, the state of glibc's memory reuse
(paddle_resnet/speed/malloc.py) and the minor page faults per step after two warm-up
steps, and saves the losses and parameters to argv[1]."""
import json
import os
import resource
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()
import paddle  # noqa: E402

from paddle_resnet.engine.step import speed_options, train_step, training_model  # noqa: E402
from paddle_resnet.models.layers import batch_shape  # noqa: E402
from paddle_resnet.speed import plan_speed  # noqa: E402
from paddle_resnet.speed.malloc import ensure_freed_memory_kept  # noqa: E402

WARMUP, STEPS = 2, 3

plan = plan_speed(speed_options([]), "cpu", 2, say=lambda line: None)
paddle.seed(0)
rng = np.random.default_rng(0)
model = training_model("resnet20", plan)
optimizer = paddle.optimizer.Momentum(0.05, momentum=0.9, parameters=model.parameters())
images = paddle.to_tensor(rng.standard_normal(batch_shape(64, plan.data_format),
                                              dtype=np.float32))
labels = paddle.to_tensor(rng.integers(0, 10, 64))
losses = [float(train_step(model, images, labels, optimizer)[0]) for _ in range(WARMUP)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
losses += [float(train_step(model, images, labels, optimizer)[0]) for _ in range(STEPS)]
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"state": ensure_freed_memory_kept(), "faults_per_step": faults / STEPS}))
np.savez(sys.argv[1], losses=np.array(losses),
         **{k: v.numpy() for k, v in model.state_dict().items()})
