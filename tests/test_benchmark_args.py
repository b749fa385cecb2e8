"""The benchmarks that run PyTorch check `--torch-python` before they measure anything:
a Python without torch stops each with one line and exit 2, not a traceback after the
Paddle side has run for minutes (benchmarks/torch_python.py)."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

NO_TORCH = "/nonexistent/python"


@pytest.mark.parametrize("script, args", [
    ("frameworks.py", []),
    ("onednn_kernels.py", []),
    ("quickstart_speed.py", ["--variants", "paddle_resnet (default)", "torch"]),
    ("fidelity.py", ["--sides", "torch"]),
])
def test_a_python_without_torch_stops_before_measuring(tmp_path, script, args):
    data_file = tmp_path / "cifar-10-python.tar.gz"
    data_file.write_bytes(b"")  # never read: the check comes first
    if script not in ("frameworks.py", "onednn_kernels.py"):
        args = ["--data-file", str(data_file)] + args
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args,
                           "--torch-python", NO_TORCH, "--json", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"{script}: error: --torch-python {NO_TORCH} cannot import torch; give a Python that "
        "has it (e.g. ~/venv-torch/bin/python)")
    assert not (tmp_path / "out.json").exists()
