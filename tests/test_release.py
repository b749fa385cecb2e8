import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import tarfile

import pytest

from conftest import ROOT, quickstart_args, run_tool
from paddle_resnet import checkpoint as ckpt
from paddle_resnet.engine.runlog import read_metrics

pytestmark = pytest.mark.slow  # each test trains a tiny run through tools/train.py

TINY = ("data.test_samples=null", "train.batch_size=50", "train.log_every=2",
        "train.epochs=2", "eval.engine=dygraph")


@pytest.fixture(scope="module")
def finished_run(tiny_cifar10, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("release") / "run"
    trained = run_tool("train", *quickstart_args(tiny_cifar10, run_dir, *TINY), "--nproc", "1")
    assert trained.returncode == 0, trained.stderr
    return run_dir


def test_a_finished_run_ships_with_a_card_whose_numbers_are_measured(finished_run,
                                                                       tiny_cifar10, tmp_path):
    out = tmp_path / "shipped" / "tiny.pdckpt"
    made = run_tool("release", str(finished_run), "--out", str(out),
                    "-o", f"data.data_file={tiny_cifar10}")
    assert made.returncode == 0, made.stderr
    shipped = ckpt.load_checkpoint(str(out))
    assert set(shipped) == {"model", "config", "progress", "format_version"}
    latest = ckpt.load_checkpoint(str(finished_run / "latest.pdckpt"))
    assert all((shipped["model"][k].numpy() == latest["model"][k].numpy()).all()
               for k in latest["model"])
    card = (tmp_path / "shipped" / "tiny.md").read_text()
    report = json.loads((tmp_path / "shipped" / "eval_tiny_test.json").read_text())
    assert f"**{report['top1']:.2f}%** / {report['top5']:.2f}% / {report['loss']:.4f}" in card
    last_epoch = [r for r in read_metrics(str(finished_run)) if r["kind"] == "epoch"][-1]
    # In-run evaluation and the release's are the same weights on the same 100 images.
    assert f"| the same epoch, as the run measured it | {last_epoch['test_top1']:.2f}% " in card
    assert abs(report["top1"] - last_epoch["test_top1"]) < 1e-6
    assert hashlib.sha256(out.read_bytes()).hexdigest() in card
    with gzip.open(tiny_cifar10, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() in card
    command = re.search(r"\| command \| `(.*)` \|", card).group(1)
    assert command == "python tools/train.py " + shlex.join(
        quickstart_args(tiny_cifar10, finished_run, *TINY) + ["--nproc", "1"])
    assert re.search(r"\| code \| commit `[0-9a-f]{7}(\+changes)?` \|", card) or \
        not os.path.isdir(os.path.join(os.path.dirname(__file__), "..", ".git"))
    assert "| 2 | " in card and (tmp_path / "shipped" / "tiny_curve.png").stat().st_size > 0
    assert "weights | the last epoch's: epoch 2 of 2" in card


def test_a_run_on_an_xz_archive_ships_with_its_whole_test_set_and_the_tars_hash(
        finished_run, tiny_cifar10, tmp_path):
    # The data of record is a .tar.xz; the run itself evaluated a 50-image subset.
    with gzip.open(tiny_cifar10, "rb") as f:
        tar_bytes = f.read()
    archive = tmp_path / "cifar10.tar.xz"
    archive.write_bytes(lzma.compress(tar_bytes))
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    state = ckpt.load_checkpoint(str(run_dir / "latest.pdckpt"))
    state["config"]["data"]["test_samples"] = 50
    ckpt.save_checkpoint(str(run_dir / "latest.pdckpt"), state)
    out = tmp_path / "shipped" / "xz.pdckpt"
    made = run_tool("release", str(run_dir), "--out", str(out), "-o", f"data.data_file={archive}")
    assert made.returncode == 0, made.stderr
    report = json.loads((tmp_path / "shipped" / "eval_xz_test.json").read_text())
    assert report["samples"] == 100  # all of the tiny archive's test images
    card = (tmp_path / "shipped" / "xz.md").read_text()
    assert f"sha256 of its tar `{hashlib.sha256(tar_bytes).hexdigest()}` (`xz -dc" in card


def test_an_unfinished_run_or_an_existing_file_is_refused_and_nothing_written(
        finished_run, tiny_cifar10, tmp_path):
    unfinished = tmp_path / "unfinished"
    trained = run_tool("train", *quickstart_args(tiny_cifar10, unfinished, *TINY),
                       "--nproc", "1")
    assert trained.returncode == 0, trained.stderr
    config = (unfinished / "config.yaml").read_text().replace("epochs: 2", "epochs: 3")
    state = ckpt.load_checkpoint(str(unfinished / "latest.pdckpt"))
    state["config"]["train"]["epochs"] = 3  # as a run stopped after 2 of 3 epochs
    ckpt.save_checkpoint(str(unfinished / "latest.pdckpt"), state)
    (unfinished / "config.yaml").write_text(config)
    out = tmp_path / "out" / "x.pdckpt"
    refused = run_tool("release", str(unfinished), "--out", str(out))
    assert refused.returncode != 0
    assert refused.stderr.strip() == (f"error: {unfinished} has finished 2 of its 3 epochs; "
                                      "release a finished run (continue this one with "
                                      "tools/train.py ... --resume)")
    assert not (tmp_path / "out").exists()
    missing = run_tool("release", str(finished_run), "--out", str(out),
                       "-o", f"data.data_file={tmp_path / 'nowhere.tar.gz'}")
    assert missing.returncode != 0 and "nowhere.tar.gz does not exist" in missing.stderr
    assert not (tmp_path / "out").exists()
    out.parent.mkdir()
    out.write_bytes(b"already here")
    refused = run_tool("release", str(finished_run), "--out", str(out))
    assert refused.stderr.strip() == (f"error: {out} exists; pass another --out or remove "
                                      "it first")
    assert out.read_bytes() == b"already here" and os.listdir(out.parent) == ["x.pdckpt"]


def test_a_run_from_a_git_archive_snapshot_records_the_commit_it_was_made_from(
        tmp_path, monkeypatch):
    # Long runs start from `git archive` snapshots, so that later edits to the work tree
    # cannot reach them; the project's own stamp and attributes, archived by real git.
    from paddle_resnet.engine import header
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in (".git_archival.txt", ".gitattributes"):
        shutil.copy(os.path.join(ROOT, name), repo / name)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "snapshot"], check=True)
    node = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    archive = subprocess.run(git + ["archive", "HEAD"], check=True, capture_output=True)
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(snapshot, filter="data")
    monkeypatch.setattr(header, "PACKAGE_ROOT", str(snapshot))
    assert header.source_commit() == f"{node[:7]} (archive)"
    # a plain copy of the tree keeps git's placeholder: no commit rather than a wrong one
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(repo / ".git_archival.txt", copy)
    monkeypatch.setattr(header, "PACKAGE_ROOT", str(copy))
    assert header.source_commit() is None
