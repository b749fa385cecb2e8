"""CIFAR-10/100 read through `paddle.vision.datasets`, kept in memory as uint8.

The whole training set is 150 MB as uint8 (50,000 x 32 x 32 x 3), so decoding once and
augmenting batches in memory beats per-image PIL transforms by a wide margin.
"""
import os
import pickle
import socket
import tarfile
import zlib
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..errors import DataError
from ..safe_unpickle import CIFAR_BATCH_GLOBALS, ForbiddenGlobal, check_data_only
from .cache import cached

# Classes per dataset: the schema's `data.dataset` choices, and what model.num_classes
# must be.
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
ARCHIVE_NAMES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
DOWNLOAD_HOST = "dataset.bj.bcebos.com"  # where paddle.vision.datasets downloads from
OFFICIAL_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"

# Per-channel statistics of the training sets, for RGB in [0, 1]. The std is over all
# pixels (0.247, ...), not the per-image average (0.2023, ...) copied in many repos.
MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

# Class names in label order, from the archives' batches.meta / meta files.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

# Fixed, run-independent seed for subsets and the validation split, so that runs with
# different seeds are compared on the same images.
SUBSET_SEED = 20160610


@dataclass
class Split:
    images: np.ndarray  # uint8, N x 32 x 32 x 3 (RGB, HWC)
    labels: np.ndarray  # int64, N

    def __len__(self):
        return len(self.labels)

    def take(self, indices: np.ndarray) -> "Split":
        return Split(self.images[indices], self.labels[indices])


def default_archive(dataset: str) -> str:
    from paddle.dataset.common import DATA_HOME
    return os.path.join(DATA_HOME, "cifar", ARCHIVE_NAMES[dataset])


def _missing_data_message(dataset: str, reason: str) -> str:
    return (f"{reason}; put {ARCHIVE_NAMES[dataset]} (the official python version, "
            f"{OFFICIAL_PAGE}) at {default_archive(dataset)} or pass "
            f"-o data.data_file=PATH")


def _can_reach(host: str, timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_archive(dataset: str, data_file: Optional[str]) -> Tuple[Optional[str], bool]:
    """(path, download): the archive to read, or None and True when Paddle should
    download it. Fails fast, never hangs, when there is neither file nor network."""
    if data_file is not None:
        if not os.path.isfile(data_file):
            raise DataError(f"data.data_file {data_file} does not exist; pass the path of "
                            f"{ARCHIVE_NAMES[dataset]} (build one from JPEGs with "
                            f"make_cifar10.py, or get it from {OFFICIAL_PAGE})")
        return data_file, False
    if os.path.isfile(default_archive(dataset)):
        return None, True  # Paddle checks its md5 and re-downloads a damaged copy
    if not _can_reach(DOWNLOAD_HOST):
        raise DataError(_missing_data_message(
            dataset, f"{dataset} is not downloaded and {DOWNLOAD_HOST} cannot be reached"))
    return None, True


def check_batches_are_data(archive: str, dataset: str, mode: str) -> None:
    """Unpickles the batches Paddle will read, resolving only what a CIFAR batch holds,
    so that a crafted archive stops here before anything in it is called."""
    # Paddle reads the members whose name holds its flag for the split ("data_batch",
    # "test_batch", "train", "test"): its own table, so the two cannot drift apart.
    from paddle.vision.datasets.cifar import MODE_FLAG_MAP
    flag = MODE_FLAG_MAP[mode + dataset[len("cifar"):]]
    with tarfile.open(archive, mode="r") as tar:
        for member in tar:
            if member.isfile() and flag in member.name:
                try:
                    check_data_only(tar.extractfile(member).read(), CIFAR_BATCH_GLOBALS)
                except ForbiddenGlobal as e:
                    raise DataError(
                        f"{archive} is not a CIFAR archive: its {member.name} names "
                        f"{e.qualified_name}, which no CIFAR batch holds, and unpickling it "
                        f"could run code; nothing from it was run. Use the official "
                        f"{ARCHIVE_NAMES[dataset]} ({OFFICIAL_PAGE}) or one built by "
                        "make_cifar10.py") from None


def _read_with_paddle(dataset: str, mode: str, path: Optional[str], download: bool):
    from paddle.vision.datasets import Cifar10, Cifar100
    cls = Cifar10 if dataset == "cifar10" else Cifar100
    return cls(data_file=path, mode=mode, download=download, backend="cv2")


def load_split(dataset: str, mode: str, data_file: Optional[str] = None) -> Split:
    """All images of one split ("train" or "test") as uint8 arrays, decoded once per
    archive (data/cache.py)."""
    path, download = resolve_archive(dataset, data_file)
    where = path or default_archive(dataset)
    archive = where if os.path.isfile(where) else None  # a download is cached next time
    images, labels = cached(archive, dataset, mode,
                            lambda: _decode(dataset, mode, path, download, where))
    return Split(images, labels)


def _decode(dataset: str, mode: str, path: Optional[str], download: bool, where: str):
    try:
        if os.path.isfile(where):  # a download is Paddle's, checked against its md5
            check_batches_are_data(where, dataset, mode)
        raw = _read_with_paddle(dataset, mode, path, download)
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError, KeyError,
            AssertionError, pickle.UnpicklingError) as e:
        if download and not os.path.isfile(default_archive(dataset)):
            raise DataError(_missing_data_message(dataset, f"downloading {dataset} failed "
                                                  f"({type(e).__name__})")) from None
        detail = (str(e).splitlines() or [""])[0].rstrip(":")
        raise DataError(f"{where} is not a readable {ARCHIVE_NAMES[dataset]} in the official "
                        f"python layout ({type(e).__name__}: {detail}); re-download or "
                        "rebuild it") from None
    if len(raw.data) == 0:
        raise DataError(f"{where} holds no {dataset} {mode} batches; is it the "
                        f"{ARCHIVE_NAMES[dataset]} archive of this dataset?")
    flat = np.stack([sample for sample, _ in raw.data])
    if flat.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: images have {flat.shape[1]} values, expected 3072 "
                        "(3 x 32 x 32); is it a CIFAR archive?")
    images = flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.uint8)
    labels = np.asarray([label for _, label in raw.data], dtype=np.int64)
    if labels.min() < 0 or labels.max() >= NUM_CLASSES[dataset]:
        raise DataError(f"{where}: labels outside 0..{NUM_CLASSES[dataset] - 1}; is it the "
                        f"{dataset} archive?")
    return np.ascontiguousarray(images), labels


def subset(split: Split, count: Optional[int], salt: int = 0) -> Split:
    """A deterministic subset of `count` images (all of them when None), in a fixed order."""
    if count is None or count >= len(split):
        return split
    order = np.random.default_rng([SUBSET_SEED, salt]).permutation(len(split))
    return split.take(np.sort(order[:count]))


def load_cifar(dataset: str, data_file: Optional[str] = None,
               train_samples: Optional[int] = None, test_samples: Optional[int] = None,
               val_samples: int = 0):
    """(train, eval, test) splits. `eval` is the held-out validation set when
    val_samples > 0, else the test set."""
    train = load_split(dataset, "train", data_file)
    test = subset(load_split(dataset, "test", data_file), test_samples, salt=1)
    if val_samples:
        if val_samples >= len(train):
            raise DataError(f"data.val_samples = {val_samples} leaves no training images "
                            f"(the training set has {len(train)})")
        order = np.random.default_rng([SUBSET_SEED, 2]).permutation(len(train))
        val = train.take(np.sort(order[:val_samples]))
        train = train.take(np.sort(order[val_samples:]))
    else:
        val = test
    train = subset(train, train_samples, salt=3)
    return train, val, test


def class_names(dataset: str, num_classes: int) -> List[str]:
    if dataset == "cifar10":
        return list(CIFAR10_CLASSES)
    return [str(i) for i in range(num_classes)]
