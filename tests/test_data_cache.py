import os
import shutil
import threading
import time

import numpy as np
import pytest

from conftest import make_archive
from paddle_resnet.data import cifar as cifar_module
from paddle_resnet.data import load_split
from paddle_resnet.data.cache import DATA_CACHE_VARIABLE


@pytest.fixture
def archive(tiny_cifar10, tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    shutil.copy(tiny_cifar10, path)
    return str(path)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(DATA_CACHE_VARIABLE, str(folder))
    return folder


@pytest.fixture
def decodes(monkeypatch):
    """How many times paddle.vision.datasets read an archive."""
    calls = []
    read = cifar_module._read_with_paddle

    def counted(*args):
        calls.append(args[1])
        time.sleep(0.2)  # long enough for a second process to arrive meanwhile
        return read(*args)

    monkeypatch.setattr(cifar_module, "_read_with_paddle", counted)
    return calls


def entries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".npz"))


def assert_same(a, b):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.images.dtype == b.images.dtype == np.uint8 and a.images.flags.c_contiguous


def test_a_split_is_decoded_once_and_then_read_from_the_cache(archive, cache, decodes):
    first = load_split("cifar10", "train", archive)
    again = load_split("cifar10", "train", archive)
    test = load_split("cifar10", "test", archive)
    assert decodes == ["train", "test"]
    assert_same(first, again)
    assert len(test) == 100 and len(entries(cache)) == 2


def test_a_rebuilt_archive_is_decoded_again_and_its_old_copy_removed(archive, cache,
                                                                      decodes, monkeypatch):
    old = load_split("cifar10", "train", archive)
    make_archive(archive, seed=1)
    new = load_split("cifar10", "train", archive)
    assert decodes == ["train", "train"]
    assert not np.array_equal(old.images, new.images)
    monkeypatch.setenv(DATA_CACHE_VARIABLE, "off")
    assert_same(new, load_split("cifar10", "train", archive))
    assert len(entries(cache)) == 1


def test_a_damaged_copy_is_decoded_again(archive, cache, decodes):
    first = load_split("cifar10", "train", archive)
    (name,) = entries(cache)
    with open(cache / name, "r+b") as f:
        f.truncate(1000)  # as a full disk would leave it
    assert_same(first, load_split("cifar10", "train", archive))
    assert decodes == ["train", "train"]
    assert_same(first, load_split("cifar10", "train", archive))
    assert decodes == ["train", "train"]


def test_an_unusable_or_disabled_cache_is_passed_by(archive, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(DATA_CACHE_VARIABLE, str(blocker / "cache"))
    assert len(load_split("cifar10", "train", archive)) == 200
    monkeypatch.setenv(DATA_CACHE_VARIABLE, "off")
    assert len(load_split("cifar10", "train", archive)) == 200
    assert sorted(os.listdir(tmp_path)) == ["a-file", "cifar-10-python.tar.gz"]


def test_processes_starting_together_decode_once(archive, cache, decodes):
    results = [None, None]

    def load(i):
        results[i] = load_split("cifar10", "train", archive)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert decodes == ["train"]
    assert_same(results[0], results[1])
    assert [name for name in os.listdir(cache) if name.startswith(".part-")] == []
