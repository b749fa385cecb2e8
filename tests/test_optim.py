import numpy as np
import paddle
import pytest

from paddle_resnet.config import load_config
from paddle_resnet.console import format_duration
from paddle_resnet.engine.meters import RunClock
from paddle_resnet.optim import IterationSchedule, build_optimizer, build_schedule
from paddle_resnet.engine.losses import label_smoothed_cross_entropy


def rates(schedule, steps):
    return [schedule.lr_at(step) for step in range(steps)]


def test_multistep_drops_at_half_and_three_quarters():
    lr = rates(IterationSchedule(0.1, 100, "multistep", milestones=[0.5, 0.75]), 100)
    assert lr[49] == pytest.approx(0.1) and lr[50] == pytest.approx(0.01)
    assert lr[74] == pytest.approx(0.01) and lr[75] == pytest.approx(0.001)


def test_linear_warmup_then_constant():
    lr = rates(IterationSchedule(0.2, 100, "constant", warmup_steps=10), 100)
    assert lr[0] == pytest.approx(0.02) and lr[4] == pytest.approx(0.1)
    assert lr[9] == pytest.approx(0.2) and lr[99] == pytest.approx(0.2)


def test_cosine_anneals_to_min_lr():
    lr = rates(IterationSchedule(0.1, 101, "cosine", min_lr=0.001), 101)
    assert lr[0] == pytest.approx(0.1)
    assert lr[50] == pytest.approx(0.001 + 0.099 / 2)
    assert lr[100] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(lr, lr[1:]))


def test_onecycle_rises_to_peak_then_falls():
    lr = rates(IterationSchedule(0.4, 100, "onecycle", pct_start=0.3), 100)
    assert lr[0] == pytest.approx(0.4 / 25)
    assert max(lr) == pytest.approx(0.4) and int(np.argmax(lr)) == 30
    assert lr[-1] < 0.001


def test_schedule_state_round_trips():
    a = IterationSchedule(0.1, 50, "cosine")
    for _ in range(17):
        a.step()
    b = IterationSchedule(0.1, 50, "cosine")
    b.set_state_dict(a.state_dict())
    assert b.last_epoch == 17 and b() == a()


@pytest.mark.parametrize("name, cls", [("sgd", paddle.optimizer.Momentum),
                                       ("adam", paddle.optimizer.Adam),
                                       ("adamw", paddle.optimizer.AdamW)])
def test_optimizers_from_config(name, cls):
    cfg = load_config(None, [f"optimizer.name={name}", "train.grad_clip=1.0",
                             "optimizer.nesterov=true", "schedule.warmup_epochs=0.5"])
    layer = paddle.nn.Linear(3, 2)
    schedule = build_schedule(cfg, steps_per_epoch=10)
    assert schedule.warmup_steps == 5 and schedule.total_steps == 200
    optimizer = build_optimizer(cfg, layer.parameters(), schedule)
    assert isinstance(optimizer, cls)
    assert isinstance(optimizer._grad_clip, paddle.nn.ClipGradByGlobalNorm)
    loss = layer(paddle.ones([4, 3])).sum()
    loss.backward()
    before = layer.weight.numpy().copy()
    optimizer.step()
    assert not np.array_equal(before, layer.weight.numpy())


def test_label_smoothing():
    logits = paddle.to_tensor([[2.0, 0.0, -1.0]])
    labels = paddle.to_tensor([0])
    plain = float(label_smoothed_cross_entropy(logits, labels, 0.0))
    smooth = float(label_smoothed_cross_entropy(logits, labels, 0.1))
    log_p = np.log(np.exp([2.0, 0.0, -1.0]) / np.exp([2.0, 0.0, -1.0]).sum())
    assert plain == pytest.approx(-log_p[0], rel=1e-5)
    assert smooth == pytest.approx(0.9 * -log_p[0] + 0.1 * -log_p.mean(), rel=1e-5)


def test_eta_counts_remaining_steps_and_evaluations():
    clock = RunClock(steps_per_epoch=10, total_epochs=3, eval_images_per_run=300,
                     evals_total=3, train_images_per_step=100)
    assert clock.eta_run(0, 0) is None
    clock.record_step(9.0)
    assert clock.step_time() == 9.0  # the only estimate there is
    clock.record_step(3.0)
    assert clock.step_time() == 3.0  # the latest warm-up step: closer to the steady state
    for seconds in (1.0, 1.0):  # the two warm-up steps are left out of the average
        clock.record_step(seconds)
    assert clock.step_time() == pytest.approx(1.0)
    assert clock.eta_epoch(4) == pytest.approx(6.0)
    # Before any evaluation: a third of the per-image training time for 300 images.
    assert clock.eta_run(4, 0) == pytest.approx(26 * 1.0 + 3 * 1.0)
    clock.record_eval(2.0)
    assert clock.eta_run(10, 1) == pytest.approx(20 + 2 * 2.0)
    assert format_duration(3725) == "01:02:05" and format_duration(None) == "--:--:--"
