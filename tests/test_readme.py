import os
import re

from conftest import ROOT


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def test_ci_runs_exactly_the_readme_test_command():
    setup = re.search(r"## Set up.*?```bash\n(.*?)```", read("README.md"), re.S).group(1)
    commands = [line for line in setup.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] in read(".ci/run").splitlines()
    assert "configs/quickstart.yaml" in commands[0]
