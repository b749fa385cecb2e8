"""`python -m paddle_resnet.train_entry`: tools/train.py for installs without tools/."""
import sys

from paddle_resnet.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
