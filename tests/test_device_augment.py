"""Augmentation on the device (Paddle operators) gives the host kernels' images from the
same random parameters; here the device is the CPU."""
import numpy as np
import pytest

from conftest import PIXEL_LEVELS, as_pixels
from paddle_resnet.data import MEAN_STD, BatchLoader, load_split
from paddle_resnet.data.augment import AUGMENTATIONS
from paddle_resnet.data.device_augment import DeviceAugmentation


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("recipe", ["standard", "none"])
def test_crop_flip_and_standardise_equal_the_host_kernels(images, recipe):
    params = AUGMENTATIONS[recipe].draw(len(images), np.random.default_rng(1))
    mean, std = MEAN_STD["cifar10"]
    host = AUGMENTATIONS[recipe].apply(images, params, mean, std)
    device = DeviceAugmentation(recipe, mean, std)(images, params).numpy()
    assert device.shape == host.shape == (64, 3, 32, 32) and device.dtype == np.float32
    np.testing.assert_array_equal(device, host)


def test_colour_jitter_equals_the_host_kernel_to_one_level(images):
    params = AUGMENTATIONS["notebook"].draw(len(images), np.random.default_rng(1))
    host = as_pixels(AUGMENTATIONS["notebook"].apply(images, params, *PIXEL_LEVELS))
    device = as_pixels(DeviceAugmentation("notebook", *PIXEL_LEVELS)(images, params).numpy())
    # Float sums in another order can move a value across a rounding boundary.
    difference = np.abs(device.astype(int) - host)
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    assert not np.array_equal(device, images)  # the jitter did act


def test_padding_is_a_standardised_zero_pixel(images):
    shift = np.array([4, -4])
    params = {"shift_y": shift, "shift_x": shift, "flip": np.array([False, True])}
    out = as_pixels(DeviceAugmentation("standard", *PIXEL_LEVELS)(images[:2], params).numpy())
    # Image 0 moved up and left by 4: padding along the bottom and right.
    assert (out[0, 28:] == 0).all() and (out[0, :, 28:] == 0).all()
    np.testing.assert_array_equal(out[0, :28, :28], images[0, 4:, 4:])
    # Image 1 moved down by 4 and mirrored: padding along the top and right.
    assert (out[1, :4] == 0).all() and (out[1, :, 28:] == 0).all()
    np.testing.assert_array_equal(out[1, 4:, :28], images[1, :28, :28][:, ::-1])


@pytest.mark.parametrize("recipe", ["standard", "notebook"])
def test_loader_on_the_device_gives_the_host_batches(tiny_cifar10, recipe):
    train = load_split("cifar10", "train", tiny_cifar10)
    mean, std = MEAN_STD["cifar10"]
    common = dict(augment=recipe, shuffle=True, drop_last=True, seed=3)
    host = BatchLoader(train, 32, mean, std, **common)
    device = BatchLoader(train, 32, mean, std, augment_on="device", **common)
    for (xh, yh), (xd, yd) in zip(host.epoch(1, start=2), device.epoch(1, start=2)):
        np.testing.assert_array_equal(yd.numpy(), yh.numpy())
        np.testing.assert_allclose(xd.numpy(), xh.numpy(), atol=0.02)  # one level at most


def test_process_shards_on_the_device_make_up_the_single_process_batch(tiny_cifar10):
    train = load_split("cifar10", "train", tiny_cifar10)
    mean, std = MEAN_STD["cifar10"]
    common = dict(augment="standard", shuffle=True, drop_last=True, seed=7,
                  augment_on="device")
    whole = next(iter(BatchLoader(train, 32, mean, std, **common).epoch(2)))
    shards = [next(iter(BatchLoader(train, 32, mean, std, rank=r, world=2, **common).epoch(2)))
              for r in (0, 1)]
    for part in (0, 1):  # images, labels
        np.testing.assert_array_equal(
            np.concatenate([shard[part].numpy() for shard in shards]), whole[part].numpy())
