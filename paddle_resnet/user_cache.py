"""The per-user cache this package writes: the built oneDNN operators
(speed/onednn_build.py) and the decoded datasets (data/cache.py)."""
import os

CACHE_VARIABLE = "PADDLE_RESNET_CACHE"  # its root (default ~/.cache/paddle_resnet)


def user_cache(name: str) -> str:
    root = os.environ.get(CACHE_VARIABLE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "paddle_resnet")
    return os.path.join(root, name)
