"""python tools/release.py --help"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from paddle_resnet.cli import release_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(release_main())
