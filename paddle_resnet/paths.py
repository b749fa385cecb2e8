"""Where a clone of the repository keeps what the package reads beside itself."""
import os

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shipped checkpoints and their model cards (pretrained/README.md); absent when the
# package is installed without the repository.
PRETRAINED_DIR = os.path.join(REPOSITORY, "pretrained")


def in_pretrained_dir(path: str) -> bool:
    folder = os.path.dirname(os.path.abspath(path))
    return (os.path.isdir(PRETRAINED_DIR) and os.path.isdir(folder)
            and os.path.samefile(folder, PRETRAINED_DIR))
