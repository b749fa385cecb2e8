"""Training on the real CIFAR-10 (../shared/data): the loss falls and ResNet-20 learns."""
import os

from conftest import ROOT
from paddle_resnet.config import load_config
from paddle_resnet.engine.runlog import read_metrics
from paddle_resnet.engine.trainer import Trainer


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
