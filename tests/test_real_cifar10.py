"""Training on the real CIFAR-10 (../shared/data): the loss falls and ResNet-20 learns."""
import os

import pytest

from conftest import ROOT
from paddle_resnet.config import load_config
from paddle_resnet.engine.runlog import read_metrics
from paddle_resnet.engine.trainer import Trainer

pytestmark = [pytest.mark.slow, pytest.mark.real_data]


def test_resnet20_quickstart_learns_real_cifar10(real_cifar10, tmp_path):
    # configs/quickstart.yaml: 2 epochs x 78 iterations of 128 on a fixed 10,000-image
    # subset; tested here on all 10,000 test images.
    cfg = load_config(os.path.join(ROOT, "configs", "quickstart.yaml"), [
        f"data.data_file={real_cifar10}", "data.test_samples=null",
        f"output_dir={tmp_path / 'run'}"])
    summary = Trainer(cfg).fit()
    records = read_metrics(str(tmp_path / "run"))
    iterations = [r for r in records if r["kind"] == "train_iter"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert iterations[0]["global_step"] == 20 and iterations[-1]["global_step"] == 156
    assert iterations[-1]["avg_loss"] < iterations[0]["avg_loss"] - 0.4
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"]
    assert epochs[-1]["test_top1"] > 35.0, epochs[-1]
    assert summary["best_top1"] >= epochs[-1]["test_top1"]

    # Export -> Paddle Inference gives dygraph's predictions on 1,000 real test images.
    import numpy as np
    import paddle
    from paddle_resnet.data import MEAN_STD, load_split
    from paddle_resnet.data.augment import normalize
    from paddle_resnet.checkpoint import load_trained_model
    from paddle_resnet.export import export_model
    from paddle_resnet.inference import InferenceModel
    checkpoint = str(tmp_path / "run" / "best.pdckpt")
    export_model(checkpoint, str(tmp_path / "exported"))
    images = load_split("cifar10", "test", real_cifar10).images[:1000]
    batch = normalize(images, *MEAN_STD["cifar10"])
    model, *_ = load_trained_model(checkpoint)
    with paddle.no_grad():
        expected = np.concatenate([model(paddle.to_tensor(batch[i:i + 250])).numpy()
                                   for i in range(0, 1000, 250)])
    predictor = InferenceModel(str(tmp_path / "exported"))
    got = np.concatenate([predictor(batch[i:i + 250]) for i in range(0, 1000, 250)])
    assert (got.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
