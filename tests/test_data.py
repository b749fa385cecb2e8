import os
import pickle
import tarfile

import numpy as np
import pytest

from conftest import (PIXEL_LEVELS, RunsCommand, add_member, as_pixels, class_images,
                      quickstart_args, run_tool)
from paddle_resnet.config import load_config
from paddle_resnet.data import BatchLoader, MEAN_STD, load_cifar, load_split
from paddle_resnet.data import cifar as cifar_module
from paddle_resnet.data.augment import normalize, notebook_recipe, pad_crop_flip
from paddle_resnet.engine.header import recipe
from paddle_resnet.errors import DataError


def test_loads_official_layout(tiny_cifar10):
    train = load_split("cifar10", "train", tiny_cifar10)
    test = load_split("cifar10", "test", tiny_cifar10)
    assert train.images.shape == (200, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (100, 32, 32, 3)
    assert train.labels.dtype == np.int64 and 0 <= train.labels.min() <= train.labels.max() < 10


def test_loads_cifar100(tiny_cifar100):
    train, _, test = load_cifar("cifar100", tiny_cifar100)
    assert len(train) == 200 and len(test) == 100


def test_subsets_and_validation_split_are_deterministic_and_disjoint(tiny_cifar10):
    train, val, test = load_cifar("cifar10", tiny_cifar10, train_samples=50, test_samples=30,
                                  val_samples=40)
    again = load_cifar("cifar10", tiny_cifar10, train_samples=50, test_samples=30,
                       val_samples=40)
    assert (len(train), len(val), len(test)) == (50, 40, 30)
    np.testing.assert_array_equal(train.images, again[0].images)
    np.testing.assert_array_equal(val.images, again[1].images)
    flat = lambda s: {im.tobytes() for im in s.images}  # noqa: E731
    assert not flat(train) & flat(val)


def test_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist; pass the path of cifar-10-python"):
        load_split("cifar10", "train", str(tmp_path / "missing.tar.gz"))


def test_truncated_archive_is_a_clear_error(tiny_cifar10, tmp_path):
    data = open(tiny_cifar10, "rb").read()
    path = tmp_path / "truncated.tar.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a readable cifar-10-python.tar.gz"):
        load_split("cifar10", "train", str(path))


def test_wrong_format_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.tar.gz"
    path.write_bytes(b"these are not the images you are looking for" * 100)
    with pytest.raises(DataError, match="not a readable"):
        load_split("cifar10", "train", str(path))


def test_wrong_dataset_archive_is_a_clear_error(tiny_cifar100):
    with pytest.raises(DataError, match="holds no cifar10 train batches"):
        load_split("cifar10", "train", tiny_cifar100)


def crafted_archive(path, marker) -> str:
    """An archive in the CIFAR-10 layout whose batches run `touch marker` when unpickled."""
    with tarfile.open(path, "w:gz") as tar:
        for name in ("data_batch_1", "test_batch"):
            add_member(tar, f"cifar-10-batches-py/{name}",
                       {b"data": RunsCommand(f"touch {marker}"), b"labels": [0]})
    return str(path)


def test_a_crafted_archive_is_refused_before_it_runs_anything(tmp_path):
    marker = tmp_path / "ran"
    path = crafted_archive(tmp_path / "evil.tar.gz", marker)
    with pytest.raises(DataError, match=r"data_batch_1 names posix\.system, which no CIFAR "
                                        r"batch holds.*nothing from it was run"):
        load_split("cifar10", "train", path)
    assert not marker.exists()


def test_training_on_a_crafted_archive_exits_with_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = crafted_archive(tmp_path / "evil.tar.gz", marker)
    done = run_tool("train", *quickstart_args(path, tmp_path / "run"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} is not a CIFAR archive: its "
                                                   "cifar-10-batches-py/"), done.stderr
    assert "names posix.system" in lines[0] and "make_cifar10.py" in lines[0]
    assert not marker.exists()


def test_an_archive_pickled_by_python_2_still_loads(tmp_path):
    """The official files were written by Python 2's cPickle, whose arrays name
    numpy.core.multiarray (numpy 2 writes numpy._core)."""
    rng = np.random.default_rng(0)

    def python2_batch(count):
        labels = rng.integers(0, 10, size=count)
        data = pickle.dumps({b"data": class_images(labels, rng), b"labels": labels.tolist()},
                            protocol=2)
        assert b"cnumpy._core.multiarray\n" in data or b"cnumpy.core.multiarray\n" in data
        return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")

    path = tmp_path / "official.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add_member(tar, "cifar-10-batches-py/data_batch_1", python2_batch(30))
        add_member(tar, "cifar-10-batches-py/test_batch", python2_batch(20))
        add_member(tar, "cifar-10-batches-py/readme.html", b"<html>not a pickle</html>")
    assert len(load_split("cifar10", "train", str(path))) == 30
    assert len(load_split("cifar10", "test", str(path))) == 20


def test_offline_without_archive_fails_fast(tmp_path, monkeypatch):
    import time
    import paddle.dataset.common
    monkeypatch.setattr(paddle.dataset.common, "DATA_HOME", str(tmp_path))
    monkeypatch.setattr(cifar_module, "DOWNLOAD_HOST", "dataset.invalid")
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_split("cifar10", "train", None)
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert "cannot be reached" in message and "-o data.data_file=PATH" in message
    assert os.path.join(str(tmp_path), "cifar", "cifar-10-python.tar.gz") in message


def test_pad_crop_flip_gives_crops_of_the_padded_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    standardised = pad_crop_flip(images, np.random.default_rng(1), *PIXEL_LEVELS)
    assert standardised.shape == (64, 3, 32, 32) and standardised.dtype == np.float32
    out = as_pixels(standardised)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    flips = 0
    for i in range(len(images)):
        found = None
        for top in range(9):
            for left in range(9):
                crop = padded[i, top:top + 32, left:left + 32]
                if np.array_equal(out[i], crop):
                    found = "plain"
                elif np.array_equal(out[i], crop[:, ::-1]):
                    found = "flipped"
        assert found is not None
        flips += found == "flipped"
    assert 16 < flips < 48


def test_notebook_recipe_keeps_shape_and_changes_colour():
    images = np.random.default_rng(0).integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)
    standardised = notebook_recipe(images, np.random.default_rng(1), *PIXEL_LEVELS)
    assert standardised.shape == (32, 3, 32, 32) and standardised.dtype == np.float32
    out = as_pixels(standardised)
    assert not np.array_equal(np.sort(out, axis=None), np.sort(images, axis=None))


def test_augmentations_standardise_as_normalize_does():
    images = np.random.default_rng(0).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    mean, std = MEAN_STD["cifar10"]
    levels = pad_crop_flip(images, np.random.default_rng(1), *PIXEL_LEVELS)
    standardised = pad_crop_flip(images, np.random.default_rng(1), mean, std)
    np.testing.assert_allclose(standardised, normalize(as_pixels(levels), mean, std),
                               rtol=1e-5, atol=1e-5)


def test_normalize_is_per_channel_standardisation():
    images = np.full((2, 32, 32, 3), 128, dtype=np.uint8)
    mean, std = MEAN_STD["cifar10"]
    out = normalize(images, mean, std)
    assert out.shape == (2, 3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], (128 / 255 - np.array(mean)) / np.array(std),
                               rtol=1e-5)


def test_loader_is_reproducible_and_resumable(tiny_cifar10):
    train = load_split("cifar10", "train", tiny_cifar10)
    mean, std = MEAN_STD["cifar10"]
    loader = BatchLoader(train, 32, mean, std, augment="standard", shuffle=True,
                         drop_last=True, seed=5)
    assert len(loader) == 6 and loader.num_samples == 192
    full = [(x.numpy(), y.numpy()) for x, y in loader.epoch(3)]
    tail = [(x.numpy(), y.numpy()) for x, y in loader.epoch(3, start=4)]
    for (xa, ya), (xb, yb) in zip(full[4:], tail):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    other_epoch = next(iter(loader.epoch(4)))[1].numpy()
    assert not np.array_equal(other_epoch, full[0][1])


def test_process_shards_make_up_the_single_process_batch(tiny_cifar10):
    train = load_split("cifar10", "train", tiny_cifar10)
    mean, std = MEAN_STD["cifar10"]
    common = dict(augment="standard", shuffle=True, drop_last=True, seed=7)
    whole = BatchLoader(train, 32, mean, std, **common)
    shards = [BatchLoader(train, 32, mean, std, rank=r, world=2, **common) for r in (0, 1)]
    assert len(whole) == len(shards[0]) == len(shards[1])
    for index in range(len(whole)):
        x, y = whole.batch_arrays(2, index)
        parts = [loader.batch_arrays(2, index) for loader in shards]
        assert all(len(p[1]) == 16 for p in parts)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)


def test_alternating_flip_mirrors_each_image_the_other_way_every_epoch(tiny_cifar10):
    train = load_split("cifar10", "train", tiny_cifar10)
    mean, std = MEAN_STD["cifar10"]

    def flips_and_crops(loader, epoch):
        """Per image of the split: was it mirrored in `epoch`, and its crop offsets."""
        order = loader.order(epoch)
        flips, crops = {}, {}
        for index in range(len(loader)):
            _, params, _ = loader.batch_source(epoch, index, order)
            picked = order[index * 32:(index + 1) * 32]
            for position, image in enumerate(picked):
                flips[image] = bool(params["flip"][position])
                crops[image] = (params["shift_y"][position], params["shift_x"][position])
        return flips, crops

    common = dict(augment="standard", shuffle=True, drop_last=True, seed=3)
    alternating = BatchLoader(train, 32, mean, std, flip="alternating", **common)
    random = BatchLoader(train, 32, mean, std, **common)
    epochs = [flips_and_crops(alternating, e) for e in range(4)]
    first = epochs[0][0]
    assert 0.3 < np.mean(list(first.values())) < 0.7
    for epoch in range(1, 4):
        flips = epochs[epoch][0]
        for image in set(first) & set(flips):
            assert flips[image] == (first[image] != bool(epoch % 2)), (epoch, image)
    # Only the flips alternate: the crops are the random recipe's, draw for draw.
    for epoch in (0, 1):
        assert flips_and_crops(random, epoch)[1] == epochs[epoch][1]
    assert flips_and_crops(random, 1)[0] != epochs[1][0]
    # Exact resume and data parallelism: a batch is fixed by (seed, epoch, index).
    shards = [BatchLoader(train, 32, mean, std, flip="alternating", rank=r, world=2, **common)
              for r in (0, 1)]
    for index in (0, 3):
        x, _ = alternating.batch_arrays(1, index)
        np.testing.assert_array_equal(
            np.concatenate([s.batch_arrays(1, index)[0] for s in shards]), x)
    with pytest.raises(ValueError, match="flip=alternating needs an augmentation that mirrors "
                                         "images; 'none' does not"):
        BatchLoader(train, 32, mean, std, augment="none", flip="alternating")
    with pytest.raises(ValueError, match="flip must be one of random, alternating"):
        BatchLoader(train, 32, mean, std, augment="standard", flip="sometimes")
    # the run's header says so
    assert ", augment standard, flips alternating, seed 0" in recipe(
        load_config(None, ["data.flip=alternating"]))
    assert ", augment standard, seed 0" in recipe(load_config())
