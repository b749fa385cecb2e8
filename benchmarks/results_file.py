"""Not a benchmark: where a benchmark's numbers go besides its printed table. Only to the
file `--json PATH` names: the files under benchmarks/results/ are the ones the docs cite,
and tests/test_readme.py holds the docs' tables to them, so running a benchmark to see its
table must not replace one (it did, when each script wrote its own file by default).
Recording a new result is a choice made by naming the file."""
import json
import os


def add_json_argument(parser, what: str = "the results") -> None:
    parser.add_argument("--json", metavar="PATH", default=None,
                        help=f"also write {what} to PATH as JSON (nothing is written without "
                             "it; benchmarks/results/ holds the files the docs cite)")


def write_json(path, payload: dict) -> None:
    """Writes `payload` to `path` whole or not at all (a stopped benchmark leaves the file
    it would have replaced as it was); nothing when `path` is None."""
    if path is None:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
    os.replace(partial, path)
