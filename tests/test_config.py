import glob
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from paddle_resnet.config import SCHEMA, document, load_config, parse_override
from paddle_resnet.errors import ConfigError


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_precedence_defaults_yaml_overrides(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 7\n  batch_size: 64\noptimizer:\n  lr: 0.05\n")
    cfg = load_config(path, ["train.epochs=3", "optimizer.name=adam"])
    assert cfg["train.epochs"] == 3            # override beats yaml
    assert cfg["train.batch_size"] == 64       # yaml beats default
    assert cfg["optimizer.lr"] == 0.05
    assert cfg["optimizer.name"] == "adam"
    assert cfg["seed"] == SCHEMA["seed"].default  # default kept
    assert cfg.train.epochs == 3 and cfg.optimizer.name == "adam"


def test_derived_values(tmp_path):
    cfg = load_config(None, ["data.dataset=cifar100", "model.name=resnet56"])
    assert cfg["model.num_classes"] == 100
    assert cfg["output_dir"] == os.path.join("output", "resnet56")


def test_overrides_are_yaml_scalars_never_eval():
    assert parse_override("optimizer.lr=1e-3") == ("optimizer.lr", 1e-3)
    assert parse_override("data.data_file=null") == ("data.data_file", None)
    assert parse_override("schedule.milestones=[0.3, 0.6]") == ("schedule.milestones", [0.3, 0.6])
    assert parse_override("output_dir=__import__('os')") == ("output_dir", "__import__('os')")


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.seed = 3


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=4", "schedule.name=cosine"])
    path = write(tmp_path, cfg.dump(), "dumped.yaml")
    assert dict(load_config(path)) == dict(cfg)
    assert dict(load_config(None, [], base=cfg.to_dict())) == dict(cfg)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_shipped_configs_are_valid(path):
    load_config(path)


def test_resnet18_config_is_the_notebook_recipe():
    cfg = load_config(os.path.join(ROOT, "configs", "resnet18.yaml"))
    assert (cfg["model.name"], cfg["optimizer.name"], cfg["optimizer.lr"],
            cfg["train.batch_size"], cfg["train.epochs"], cfg["data.augment"]) == (
        "resnet18", "adam", 1e-3, 150, 20, "notebook")


@pytest.mark.parametrize("yaml_text, overrides, message", [
    ("trian:\n  epochs: 3\n", [], "unknown config key 'trian'.*did you mean"),
    ("train:\n  epoch: 3\n", [], "unknown config key 'train.epoch'; did you mean train.epochs"),
    ("", ["optimizer.learning_rate=0.1"], "unknown config key 'optimizer.learning_rate'"),
    ("", ["train.batchsize=3"], "did you mean train.batch_size"),
    ("", ["optimizer.lr=-0.1"], "optimizer.lr = -0.1 is not allowed; expected a number > 0"),
    ("", ["train.batch_size=0"], "train.batch_size = 0 is not allowed; expected an integer >= 1"),
    ("", ["train.epochs=0"], "train.epochs = 0 .*>= 1"),
    ("", ["train.epochs=2.5"], "train.epochs = 2.5 .*an integer"),
    ("", ["train.epochs=ten"], "train.epochs = 'ten' .*an integer"),
    ("", ["optimizer.name=rmsprop"], "optimizer.name = 'rmsprop' .*one of sgd, adam, adamw"),
    ("", ["schedule.name=poly"], "one of constant, multistep, cosine, onecycle"),
    ("", ["data.dataset=mnist"], "one of cifar10, cifar100"),
    ("", ["model.name=resnet65"], "not a known model; did you mean resnet56"),
    ("", ["model.name=cifar_resnet", "model.depth=21"], "6n\\+2"),
    ("", ["model.name=cifar_resnet"], "needs model.depth"),
    ("", ["model.depth=20"], "model.depth applies only to cifar_resnet"),
    ("", ["model.num_classes=100"], "cifar10 has 10 classes"),
    ("", ["model.shortcut=D"], "one of A, B, C"),
    ("", ["optimizer.nesterov=maybe"], "true or false"),
    ("", ["device=tpu"], "auto, cpu, gpu or gpu:N"),
    ("", ["data.flip=alternating", "data.augment=none"],
     "data.flip = alternating mirrors what the augmentation flips, but data.augment = none "
     "flips nothing; set data.augment=standard or data.flip=random"),
    ("", ["data.flip=sometimes"], "data.flip = 'sometimes' .*one of random, alternating"),
    ("", ["eval.tta=shift"], "eval.tta = 'shift' .*one of none, flip, flip_shift"),
    ("", ["schedule.milestones=[0.8, 0.2]"], "increasing fractions"),
    ("", ["train.epochs=2", "schedule.warmup_epochs=2"], "spans the whole run of train.epochs"),
    ("", ["model.kwargs.stem_chanels=8"], "model.kwargs.stem_chanels: resnet20 takes no such "
                                          "argument"),
    ("", ["model.kwargs.depth=8"], "model.kwargs.depth: set model.depth instead"),
    ("", ["model.name=resnet18", "model.kwargs=[1]"], "model.kwargs = \\[1\\] is not allowed"),
    ("", ["optimizer.betas=[0.9]"], "two numbers"),
    ("", ["train.epochs"], "must look like key.sub=value"),
    ("", ["=3"], "has no key"),
    ("", ["train.epochs=[1"], "cannot parse the value"),
    ("", ["train={epochs: 3}"], "one key at a time"),
    ("train: [1, 2]\n", [], "section 'train' must be a mapping"),
    ("", ["model.name=cifar_resnet", "model.depth=1000000"], "<= 2000"),
    ("- 1\n- 2\n", [], "a config must be a mapping"),
    ("train:\n  epochs: [3\n", [], "invalid yaml at line"),
])
def test_validation_errors(tmp_path, yaml_text, overrides, message):
    path = write(tmp_path, yaml_text) if yaml_text else None  # "": overrides alone
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, overrides)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*configs/"):
        load_config(str(tmp_path / "nope.yaml"))


def test_docs_config_md_lists_every_key():
    with open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8") as f:
        text = f.read()
    assert document() in text, "docs/config.md is stale: run python tools/gen_docs.py"
    for key in ("model.name", "model.num_classes", "data.dataset", "data.data_file",
                "data.train_samples", "data.test_samples", "train.epochs", "train.batch_size",
                "optimizer.name", "optimizer.lr", "seed", "device", "output_dir"):
        assert key in SCHEMA and f"`{key}`" in text


def test_results_experiments_are_valid_configs():
    import importlib.util
    spec = importlib.util.spec_from_file_location("experiments",
                                                  os.path.join(ROOT, "tools", "experiments.py"))
    experiments = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiments)
    for name, runs in experiments.EXPERIMENTS.items():
        models = set()
        for run, config, overrides in runs:
            cfg = load_config(os.path.join(ROOT, config), overrides)
            models.add(cfg["model.name"])
            # One recipe and budget per experiment: only the model or the seed varies.
            shared = {k: v for k, v in cfg.items() if k not in ("model.name", "seed",
                                                                 "output_dir")}
            if run == runs[0][0]:
                first = shared
            assert shared == first, f"{name}/{run} differs from {runs[0][0]}"
        assert len(models) == len(runs) or name == "seeds"


def test_a_name_added_to_a_code_table_is_a_choice_of_the_schema_and_its_docs(monkeypatch):
    # The code's tables are the only place their names are written (schema.NamesOf).
    from paddle_resnet.data import augment
    from paddle_resnet import optim
    from paddle_resnet.models import resnet
    from paddle_resnet.schema import document
    monkeypatch.setitem(optim.OPTIMIZERS, "lamb", optim.OPTIMIZERS["adam"])
    monkeypatch.setitem(optim.SCHEDULES, "linear", optim.SCHEDULES["cosine"])
    monkeypatch.setitem(augment.AUGMENTATIONS, "flip", augment.AUGMENTATIONS["none"])
    monkeypatch.setattr(resnet, "SHORTCUT_OPTIONS", resnet.SHORTCUT_OPTIONS + ("D",))
    cfg = load_config(None, ["optimizer.name=lamb", "schedule.name=linear",
                           "data.augment=flip", "model.shortcut=D"])
    assert (cfg["optimizer.name"], cfg["schedule.name"]) == ("lamb", "linear")
    assert (cfg["data.augment"], cfg["model.shortcut"]) == ("flip", "D")
    table = document()
    for row, name in (("optimizer.name", "lamb"), ("schedule.name", "linear"),
                      ("data.augment", "flip"), ("model.shortcut", "D")):
        line = next(line for line in table.splitlines() if line.startswith(f"| `{row}`"))
        assert f", {name} " in line or f", {name} or null" in line, line
    monkeypatch.delitem(optim.OPTIMIZERS, "lamb")
    with pytest.raises(ConfigError, match=r"optimizer.name = 'lamb' is not allowed; "
                                          r"expected one of sgd, adam, adamw$"):
        load_config(None, ["optimizer.name=lamb"])


def test_every_schedule_the_schema_allows_computes_a_rate():
    from paddle_resnet.optim import IterationSchedule
    for kind in SCHEMA["schedule.name"].choices:
        schedule = IterationSchedule(peak_lr=0.1, total_steps=10, kind=kind, warmup_steps=0,
                                     milestones=[0.5], gamma=0.1, min_lr=0.0, pct_start=0.3)
        assert schedule.lr_at(5) >= 0
    with pytest.raises(ValueError, match="schedule must be one of constant, multistep, "
                                         "cosine, onecycle, got 'step'"):
        IterationSchedule(peak_lr=0.1, total_steps=10, kind="step")


def test_a_mistyped_key_is_reported_before_paddle_loads():
    # Importing Paddle takes seconds; a typo in a config should not wait for it. Run the
    # tool in a fresh interpreter, where Paddle can only come from its own imports.
    probe = ("import runpy, sys\n"
             "sys.argv = ['tools/train.py', '-c', 'configs/resnet20.yaml', '-o', 'train.epoch=1']\n"
             "try:\n"
             "    runpy.run_path('tools/train.py', run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    print('exit', e.code, 'paddle' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert "unknown config key 'train.epoch'; did you mean train.epochs" in done.stderr
    assert done.stdout.split() == ["exit", "2", "False"]


@pytest.mark.parametrize("tool", sorted(os.path.basename(p)[:-3]
                                        for p in glob.glob(os.path.join(ROOT, "tools", "*.py"))))
def test_every_tool_starts_without_notices_on_stderr(tool):
    # Importing Paddle warns about ccache; the tools set their process up first (runtime.py).
    from conftest import run_tool
    done = run_tool(tool, "--help", timeout=120)
    assert done.returncode == 0 and done.stdout, done.stderr[-2000:]
    assert done.stderr == ""
