"""engine/build.py: a config becomes the objects a run trains with, in Paddle's order."""
import pytest

from paddle_resnet import checkpoint as ckpt
from paddle_resnet.config import load_config
from paddle_resnet.device import Processes
from paddle_resnet.engine.build import build_training
from paddle_resnet.optim import OPTIMIZERS
from paddle_resnet.errors import CheckpointError


def parts_for(archive, tmp_path, *overrides):
    cfg = load_config("configs/quickstart.yaml", [f"data.data_file={archive}",
                                                  f"output_dir={tmp_path}", *overrides])
    return build_training(cfg, Processes(), say=lambda line: None)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_the_step_the_optimizer_and_the_checkpoint_hold_the_same_parameters(
        optimizer, tiny_cifar10, tmp_path):
    parts = parts_for(tiny_cifar10, tmp_path, f"optimizer.name={optimizer}")
    held = {id(p) for p in parts.model.parameters()}
    assert {id(p) for p in parts.optimizer._parameter_list} == held
    assert {id(p) for p in parts.forward_model.parameters()} == held
    assert {id(v) for v in parts.model.state_dict().values()} >= held


def test_resume_refuses_optimizer_state_without_its_parameter(tiny_cifar10, tmp_path):
    parts = parts_for(tiny_cifar10, tmp_path)
    state = {"@layer9.conv1.weight_velocity_0": 0.0, "LR_Scheduler": {"last_epoch": 0}}
    with pytest.raises(CheckpointError, match="optimizer state layer9.conv1.weight_velocity_0 "
                                              "found no parameter of this model"):
        ckpt.load_optimizer_state(parts.optimizer, parts.model, state)
