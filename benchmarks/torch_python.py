"""The Python that runs a benchmark's PyTorch side (`--torch-python`, often a venv of its
own): checked once, before anything is measured, so a Python without PyTorch stops the
benchmark with one line instead of a traceback after the Paddle side has run
(frameworks.py, quickstart_speed.py, fidelity.py, onednn_kernels.py)."""
import subprocess


def can_import_torch(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0
    except OSError:  # not there, or not a program
        return False


def require_torch(parser, python: str) -> None:
    """Stops through `parser.error` (exit 2) when `python` cannot import torch."""
    if not can_import_torch(python):
        parser.error(f"--torch-python {python} cannot import torch; give a Python that has "
                     "it (e.g. ~/venv-torch/bin/python)")
