"""Decoded CIFAR splits kept on disk, so that a run starts without decoding its archive.

paddle.vision.datasets unpickles every batch of the tar.gz into one Python tuple per
image: ~5 s for the 50,000 training images on this machine, paid by every worker of
every run and by every tools/eval.py. The arrays it yields are stored once per archive as
an uncompressed .npz (180 MB for CIFAR-10) in the user's cache, keyed by the archive's
path, size, inode and modification time, so a rebuilt or replaced archive is decoded
again, and its stale copy removed. Processes starting together decode once (a lock);
a cache that cannot be written or read is passed by, never an error.
"""
import fcntl
import hashlib
import os
import tempfile
import zipfile
from typing import Callable, Optional

import numpy as np

from ..user_cache import user_cache

DATA_CACHE_VARIABLE = "PADDLE_RESNET_DATA_CACHE"  # its folder, or `off`
FORMAT = 1  # bump when what is stored changes


def cache_folder() -> Optional[str]:
    chosen = os.environ.get(DATA_CACHE_VARIABLE)
    if chosen == "off":
        return None
    return chosen or user_cache("datasets")


def _entry_names(archive: str, dataset: str, mode: str):
    """(stem shared by every copy of this archive path, the file of its current state)."""
    real = os.path.realpath(archive)
    state = os.stat(real)
    where = hashlib.sha256(real.encode()).hexdigest()[:12]
    version = hashlib.sha256(f"{FORMAT}\0{state.st_size}\0{state.st_ino}\0"
                             f"{state.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = f"{dataset}-{mode}-{where}-"
    return stem, stem + version + ".npz"


def _load(path: str):
    try:
        with np.load(path) as stored:
            return stored["images"], stored["labels"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # absent, or cut short by a full disk: decode again


def _store(folder: str, stem: str, name: str, images: np.ndarray, labels: np.ndarray):
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=".part-", suffix=".npz", dir=folder)
        with os.fdopen(handle, "wb") as f:
            np.savez(f, images=images, labels=labels)
        os.replace(temporary, os.path.join(folder, name))  # readers see all of it or none
    except OSError:  # a full disk or a folder this user cannot write
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        return
    for other in os.listdir(folder):  # this archive's copies from before a rebuild
        if other.startswith(stem) and other != name:
            try:
                os.remove(os.path.join(folder, other))
            except OSError:
                pass


def cached(archive: Optional[str], dataset: str, mode: str,
           decode: Callable[[], tuple]) -> tuple:
    """(images, labels) of one split of `archive`: from the cache, else `decode()`d and
    stored. `archive` None (not known before a download) decodes without caching."""
    folder = cache_folder()
    if archive is None or folder is None or not os.path.isfile(archive):
        return decode()
    stem, name = _entry_names(archive, dataset, mode)
    path = os.path.join(folder, name)
    found = _load(path)
    if found is not None:
        return found
    try:
        os.makedirs(folder, exist_ok=True)
        lock = open(os.path.join(folder, ".lock"), "w")
    except OSError:
        return decode()
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the OS if this process dies
        found = _load(path)  # another process may have stored it meanwhile
        if found is not None:
            return found
        images, labels = decode()
        _store(folder, stem, name, images, labels)
    return images, labels
