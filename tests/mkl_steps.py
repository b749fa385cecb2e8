"""A few ResNet-20 training steps on fixed random data; prints, as JSON, which dispatch
MKL chose (mkl_serv_cpu_detect: 0 generic, 5 AVX2) and saves the losses and parameters
to argv[1]. With argv[2] == "paddle-first", Paddle is imported (and computes nothing)
before paddle_resnet, as a user's script might."""
import ctypes
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if len(sys.argv) > 2 and sys.argv[2] == "paddle-first":
    import paddle  # noqa: F401
from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()
import paddle  # noqa: E402

from paddle_resnet.engine.step import train_step  # noqa: E402
from paddle_resnet.models import build_model  # noqa: E402

paddle.seed(0)
rng = np.random.default_rng(0)
images = paddle.to_tensor(rng.standard_normal((32, 3, 32, 32), dtype=np.float32))
labels = paddle.to_tensor(rng.integers(0, 10, 32))
model = build_model("resnet20")
optimizer = paddle.optimizer.Momentum(0.05, momentum=0.9, parameters=model.parameters())
losses = []
for _ in range(3):
    losses.append(float(train_step(model, images, labels, optimizer)[0]))
mkl = ctypes.CDLL(os.path.join(os.path.dirname(paddle.__file__), "libs", "libmklml_intel.so"))
print(json.dumps({"dispatch": mkl.mkl_serv_cpu_detect(),
                  "variable": os.environ.get("MKL_DEBUG_CPU_TYPE")}))
np.savez(sys.argv[1], losses=np.array(losses),
         **{k: v.numpy() for k, v in model.state_dict().items()})
