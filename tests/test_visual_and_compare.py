"""VisualDL records, gradient-flow diagnostics, and tools/compare.py."""
import numpy as np
import paddle
import pytest

from conftest import run_tool
from paddle_resnet.config import load_config
from paddle_resnet.engine.runlog import read_metrics
from paddle_resnet.engine.trainer import Interrupted, NonFiniteLoss, Trainer
from paddle_resnet.engine.visual import RECORD_FILE, stage_of

EXPECTED_SCALARS = {"train/loss", "train/top1", "train/lr", "train/ips", "eval/loss",
                    "eval/top1", "eval/top5", "time/epoch_s", "grad_norm/stem",
                    "grad_norm/layer1", "grad_norm/layer2", "grad_norm/layer3", "grad_norm/fc",
                    "weight_norm/layer3"}


def config(archive, out, *extra):
    return load_config(None, [f"data.data_file={archive}", f"output_dir={out}",
                              "train.epochs=2", "train.batch_size=32", "train.log_every=2",
                              "data.test_samples=40", "log.histogram_every=1", *extra])


def read_board(run_dir):
    from visualdl import LogReader
    return LogReader(file_path=str(run_dir / RECORD_FILE))


def steps_of(reader, tag):
    return [record.id for record in reader.get_data("scalar", tag)]


@pytest.mark.slow
def test_visualdl_reads_back_every_tag(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    Trainer(config(tiny_cifar10, out)).fit()
    reader = read_board(out)
    tags = reader.get_tags()
    assert EXPECTED_SCALARS <= set(tags["scalar"])
    assert {"weights/layer1", "grads/layer1", "grads/fc"} <= set(tags["histogram"])
    assert tags.get("hyper_parameters")
    assert steps_of(reader, "train/loss") == [2, 4, 6, 8, 10, 12]
    assert steps_of(reader, "eval/top1") == [1, 2]


@pytest.mark.slow
def test_resumed_run_continues_the_curves(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(config(tiny_cifar10, out))
    trainer._step_hook = lambda t: t.progress.global_step == 9 and t.request_stop()
    with pytest.raises(Interrupted):
        trainer.fit()
    Trainer(config(tiny_cifar10, out), resume=str(out / "latest.pdckpt")).fit()
    reader = read_board(out)
    assert steps_of(reader, "train/loss") == [2, 4, 6, 8, 10, 12]
    assert steps_of(reader, "eval/top1") == [1, 2]


def test_exploding_gradient_warning_names_the_layer(tiny_cifar10, tmp_path, capsys):
    out = tmp_path / "run"
    Trainer(config(tiny_cifar10, out, "train.epochs=1", "log.grad_explode_above=1e-9",
                   "log.visualdl=false")).fit()
    printed = capsys.readouterr().out
    assert "warning: step 2: gradient norm of layer1 is exploding" in printed
    assert "largest in layer1." in printed
    warnings = [r for r in read_metrics(str(out)) if r["kind"] == "warning"]
    assert {w["stage"] for w in warnings} >= {"stem", "layer1", "layer2", "layer3", "fc"}
    assert all(stage_of(w["layer"]) == w["stage"] for w in warnings)


def test_vanishing_gradient_warning(tiny_cifar10, tmp_path, capsys):
    Trainer(config(tiny_cifar10, tmp_path / "run", "train.epochs=1",
                   "log.grad_vanish_below=1e9", "log.visualdl=false")).fit()
    assert "is vanishing" in capsys.readouterr().out


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(config(tiny_cifar10, out, "log.visualdl=false"))

    def poison(t):
        if t.progress.global_step == 8:
            weight = t.model.fc.weight
            weight.set_value(paddle.full(weight.shape, float("nan")))

    trainer._step_hook = poison
    with pytest.raises(NonFiniteLoss, match="non-finite at step 9 \\(epoch 2, iteration 3\\); "
                                            "the last good checkpoint .* is kept"):
        trainer.fit()
    from paddle_resnet import checkpoint as ckpt
    state = ckpt.load_checkpoint(str(out / "latest.pdckpt"))
    assert state["progress"]["epoch"] == 1
    assert all(np.isfinite(v.numpy()).all() for v in state["model"].values())


@pytest.mark.slow
def test_compare_writes_table_and_plots(tiny_cifar10, tmp_path):
    root = tmp_path / "runs"
    for name in ("resnet20", "plain20"):
        Trainer(config(tiny_cifar10, root / name, f"model.name={name}",
                       "log.visualdl=false")).fit()
    result = run_tool("compare", str(root / "*"), "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| resnet20 | resnet20 | 269,722 | 40.6M | 2/2 |" in table
    assert "| plain20 | plain20 | 269,722 | 40.6M | 2/2 |" in table
    for name in ("test_top1.png", "train_loss.png", "train_error.png", "train_test_error.png",
                 "train_loss_steps.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 10_000
    missing = run_tool("compare", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def write_run(folder, epochs_done, steps_logged, steps_per_epoch=10, model="resnet20",
              family=None):
    """A run directory as tools/train.py leaves it, `epochs_done` epochs in (`family`:
    as records since 2026-12-01 name it; None, as older ones)."""
    import json
    folder.mkdir(parents=True)
    records = [{"kind": "run", "global_step": 0, "model": model, "params": 1, "flops": 1,
                "train_images": 10 * steps_per_epoch, "batch_size": 10, "eval_split": "test"}]
    if family is not None:
        records[0]["family"] = family
    for step in range(1, steps_logged + 1):
        records.append({"kind": "train_iter", "epoch": (step - 1) // steps_per_epoch + 1,
                        "iter": (step - 1) % steps_per_epoch + 1, "global_step": step,
                        "loss": 2.0, "avg_loss": 2.0 - step / 100, "top1": 10.0 + step,
                        "ips": 100.0})
        if step % steps_per_epoch == 0:
            records.append({"kind": "epoch", "epoch": step // steps_per_epoch,
                            "global_step": step, "train_loss": 1.9, "train_top1": 20.0,
                            "test_top1": 25.0, "elapsed": 5.0})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "config.yaml").write_text("train:\n  epochs: 3\n")


def test_compare_reads_short_and_unfinished_runs(tmp_path):
    from paddle_resnet import compare
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    write_run(tmp_path / "runs" / "one_epoch", 1, 10)
    write_run(tmp_path / "runs" / "cut_early", 0, 0)
    runs = [compare.summarize_run(str(tmp_path / "runs" / name))
            for name in ("one_epoch", "cut_early")]
    # one epoch: the training curves come from the logged steps, in fractions of an epoch
    x, y = compare._training_curve(runs[0], "train_error", compare._few_epochs(runs))
    assert x == [i / 10 for i in range(1, 11)] and y[0] == 89.0
    fig, ax = plt.subplots()
    compare._axes_in_epochs(ax, runs)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks == [0.0, 1.0]
    plt.close(fig)

    result = run_tool("compare", str(tmp_path / "runs" / "*"))
    assert result.returncode == 0, result.stderr
    # beside the runs, not in the current directory
    table = (tmp_path / "runs" / "comparison" / "comparison.md").read_text()
    assert "| cut_early | resnet20 | 1 | 0.0M | 0/3 (no data yet) |" in table
    assert "not in the plots: cut_early" in result.stdout


def test_a_run_evaluated_on_two_views_is_marked_in_the_table(tmp_path):
    from paddle_resnet import compare
    write_run(tmp_path / "one_view", 3, 30)
    write_run(tmp_path / "two_views", 3, 30)
    (tmp_path / "two_views" / "config.yaml").write_text("train:\n  epochs: 3\neval:\n  tta: flip\n")
    table = compare.markdown_table([compare.summarize_run(str(tmp_path / name))
                                    for name in ("one_view", "two_views")])
    assert "| one_view | resnet20 | 1 | 0.0M | 3/3 | 25.00% | 25.00% |" in table
    assert "| two_views | resnet20 | 1 | 0.0M | 3/3 | 25.00% (eval.tta=flip) | 25.00% |" in table


def test_the_error_figure_has_a_panel_per_family_as_he_et_al_fig_6(tmp_path):
    from paddle_resnet import compare
    names = {"plain20": "plain", "plain56": "plain", "resnet20": "resnet", "resnet56": "resnet"}
    for name, family in names.items():
        write_run(tmp_path / "new" / name, 3, 30, model=name, family=family)
    runs = [compare.summarize_run(str(tmp_path / "new" / name)) for name in names]
    panels = compare.error_panels(runs)
    assert [(family, [r["run"] for r in members]) for family, members in panels] == [
        ("plain", ["plain20", "plain56"]), ("resnet", ["resnet20", "resnet56"])]
    one_family = [r for r in runs if r["family"] == "resnet"]
    assert compare.error_panels(one_family) == [(None, one_family)]
    write_run(tmp_path / "old" / "plain20", 3, 30, model="plain20")  # no family recorded
    older = runs[2:] + [compare.summarize_run(str(tmp_path / "old" / "plain20"))]
    assert compare.error_panels(older) == [(None, older)]
    wide = compare.plot_errors(runs, str(tmp_path), name="panels.png")
    narrow = compare.plot_errors(older, str(tmp_path), name="single.png")
    from PIL import Image
    assert Image.open(wide).size[0] > 1.5 * Image.open(narrow).size[0]


def test_a_torch_twin_run_compares_beside_a_package_run(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from conftest import ROOT
    from paddle_resnet import compare
    flags = {"model": "resnet20", "epochs": 164, "batch_size": 128, "train_samples": 0}
    epochs = [{"epoch": e, "train_loss": 2.0 / e, "train_top1": 40.0 + e,
               "test_loss": 1.5 / e, "test_top1": 45.0 + e, "elapsed": 100.0 * e}
              for e in (1, 2, 3)]
    twin_json = tmp_path / "twin.json"
    twin_json.write_text(json.dumps({"args": flags, "epochs": epochs}))
    script = [sys.executable, os.path.join(ROOT, "benchmarks", "twin_run.py")]
    done = subprocess.run(script + [str(twin_json), str(tmp_path / "twin")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "3 of 164 epochs" in done.stdout
    twin = compare.summarize_run(str(tmp_path / "twin"))
    assert (twin["model"], twin["epochs_done"], twin["epochs_planned"]) == ("resnet20", 3, 164)
    assert twin["curves"]["eval_error"] == [54.0, 53.0, 52.0]
    assert twin["curves"]["train_error"] == [59.0, 58.0, 57.0]
    assert twin["final_top1"] == 48.0 and twin["wall_time"] == 300.0
    # a directory with a package run in it is not overwritten
    write_run(tmp_path / "package", 3, 30)
    before = (tmp_path / "package" / "metrics.jsonl").read_text()
    refused = subprocess.run(script + [str(twin_json), str(tmp_path / "package")],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "not a twin's" in refused.stderr
    assert (tmp_path / "package" / "metrics.jsonl").read_text() == before
