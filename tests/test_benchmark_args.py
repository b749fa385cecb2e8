"""The benchmarks that run PyTorch check `--torch-python` before they measure anything:
a Python without torch stops each with one line and exit 2, not a traceback after the
Paddle side has run for minutes (benchmarks/torch_python.py)."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

NO_TORCH = "/nonexistent/python"


def argument_error(tmp_path, script, args, data_file=True) -> str:
    """The last stderr line of `script` with `args`, asserting argparse's exit 2 and that
    no JSON was written; `data_file`: pass an empty archive, never read as the check
    comes first."""
    if data_file:
        archive = tmp_path / "cifar-10-python.tar.gz"
        archive.write_bytes(b"")
        args = ["--data-file", str(archive)] + args
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args,
                           "--json", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert not (tmp_path / "out.json").exists()
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("script, args", [
    ("frameworks.py", []),
    ("onednn_kernels.py", []),
    ("quickstart_speed.py", ["--variants", "paddle_resnet (default)", "torch"]),
    ("fidelity.py", ["--sides", "torch"]),
])
def test_a_python_without_torch_stops_before_measuring(tmp_path, script, args):
    takes_data = script not in ("frameworks.py", "onednn_kernels.py")
    assert argument_error(tmp_path, script, args + ["--torch-python", NO_TORCH],
                          takes_data) == (
        f"{script}: error: --torch-python {NO_TORCH} cannot import torch; give a Python that "
        "has it (e.g. ~/venv-torch/bin/python)")


def test_as_an_avx2_host_refuses_bf16_variants(tmp_path):
    assert argument_error(tmp_path, "quickstart_speed.py", [
        "--as-avx2-host", "--variants", "torch channels_last", "torch channels_last bf16"]) == (
        "quickstart_speed.py: error: --as-avx2-host has no bf16 kernels; leave out "
        "torch channels_last bf16")


def test_as_an_avx2_host_limits_both_frameworks_and_convolves_in_float32(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import quickstart_speed
    for variant in ("paddle_resnet (default)", "torch channels_last"):
        args, env = quickstart_speed.command(variant, "data.tar.gz", 1280, 100, "out",
                                             as_avx2_host=True)
        assert env == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
        assert ("speed.conv_bf16=false" in args) == variant.startswith("paddle_resnet")
        plain_args, plain_env = quickstart_speed.command(variant, "data.tar.gz", 1280, 100,
                                                         "out")
        assert "ONEDNN_MAX_CPU_ISA" not in plain_env and "speed.conv_bf16=false" not in plain_args


def test_another_checkout_runs_its_own_train_py_and_package(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import quickstart_speed
    variant = quickstart_speed.checkout_variant(str(tmp_path))
    args, env = quickstart_speed.command(variant, "data.tar.gz", 1280, 100, "out",
                                         root=str(tmp_path))
    assert args[1] == os.path.join(str(tmp_path), "tools", "train.py")
    assert env == {"PYTHONPATH": str(tmp_path)}  # its workers import it, not this checkout
    args, env = quickstart_speed.command("paddle_resnet (default)", "data.tar.gz", 1280, 100,
                                         "out")
    assert args[1] == os.path.join(ROOT, "tools", "train.py") and env == {}


def test_a_checkout_without_the_training_tool_is_refused(tmp_path):
    assert argument_error(tmp_path, "quickstart_speed.py", [
        "--variants", "paddle_resnet (default)", "--checkout", str(tmp_path)]) == (
        f"quickstart_speed.py: error: --checkout {tmp_path} is not a checkout of this "
        "repository (no tools/train.py)")
    assert argument_error(tmp_path, "quickstart_speed.py", [
        "--variants", "paddle_resnet (default)", "--baseline", "tensorflow"]).startswith(
        "quickstart_speed.py: error: --baseline 'tensorflow' is not a variant; choose from "
        "paddle_resnet (default), ")


def test_results_are_written_only_to_the_file_named(monkeypatch, tmp_path):
    """Running a benchmark to see its table must not replace a file the docs cite (each
    script used to write benchmarks/results/<name>.json unless told otherwise)."""
    import argparse
    import json
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    from results_file import add_json_argument, write_json
    parser = argparse.ArgumentParser()
    add_json_argument(parser)
    assert parser.parse_args([]).json is None
    monkeypatch.chdir(tmp_path)
    write_json(None, {"rows": [1]})
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "new" / "out.json"
    write_json(str(path), {"rows": [1]})
    assert json.loads(path.read_text()) == {"rows": [1]}
    with pytest.raises(TypeError):  # a payload that cannot be written leaves the old file
        write_json(str(path), {"rows": [object()]})
    assert json.loads(path.read_text()) == {"rows": [1]}


def test_every_benchmark_takes_its_json_path_from_the_shared_argument():
    import ast
    folder = os.path.join(ROOT, "benchmarks")
    own = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name == "results_file.py":
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_argument" and node.args
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--json"):
                own.append(name)
    # torch_twin.py runs in PyTorch's Python as its callers' worker; they name its file
    assert own == ["torch_twin.py"]
