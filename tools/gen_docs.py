"""Regenerate the generated tables in docs/: the config keys (docs/config.md) and the
model table (docs/models.md, the same table `tools/summary.py` prints)."""
import argparse
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()  # before the model table imports Paddle, whose import warns about ccache
from paddle_resnet.config import document  # noqa: E402
from paddle_resnet.models.summary import format_table, summarize  # noqa: E402

BEGIN, END = "<!-- generated: begin -->", "<!-- generated: end -->"


def replace_generated(path: str, table: str) -> None:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        sys.exit(f"error: {path} has no {BEGIN} ... {END} section to fill")
    text = pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"updated {path}")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    replace_generated(os.path.join(ROOT, "docs", "config.md"), document())
    replace_generated(os.path.join(ROOT, "docs", "models.md"), format_table(summarize()))
