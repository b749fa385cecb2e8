"""The whole-batch augmentation draws from the same distribution as the per-image
paddle.vision.transforms pipeline it replaces (the notebook's and the paper's)."""
import random

import numpy as np
import paddle.vision.transforms as T
import pytest
from PIL import Image

from conftest import PIXEL_LEVELS, as_pixels
from paddle_resnet.data.augment import NOTEBOOK_JITTER, notebook_recipe, pad_crop_flip

N = 1500


def ks_statistic(a, b):
    """Two-sample Kolmogorov-Smirnov distance."""
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), values, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values, side="right") / len(b)
    return np.abs(cdf_a - cdf_b).max()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(3)
    # A smooth gradient plus texture: crops, flips and colour changes all show.
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([x * 8, y * 8, (x + y) * 4], axis=-1) + rng.integers(0, 40, (32, 32, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def per_image(image, transform):
    random.seed(0)  # paddle.vision.transforms draw from Python's global generator
    np.random.seed(0)
    return np.stack([np.asarray(transform(Image.fromarray(image))) for _ in range(N)])


def test_pad_crop_flip_matches_random_crop_and_flip(image):
    reference = per_image(image, T.Compose([T.RandomCrop(32, padding=4),
                                            T.RandomHorizontalFlip()]))
    ours = as_pixels(pad_crop_flip(np.repeat(image[None], N, axis=0), np.random.default_rng(0),
                                   *PIXEL_LEVELS))
    # The same expected value at every pixel: the difference of the two sample means in
    # units of its standard error stays below 5 over all 3,072 values (a two-sided tail
    # of 6e-7 each), where a wrong padding or flip rate gives tens.
    a, b = ours.astype(float), reference.astype(float)
    standard_error = np.sqrt((a.var(0) + b.var(0)) / N) + 1e-9
    assert (np.abs(a.mean(0) - b.mean(0)) / standard_error).max() < 5
    # The fraction of zero-padding pixels: the crop-offset distribution.
    assert abs((ours == 0).all(-1).mean() - (reference == 0).all(-1).mean()) < 0.01


@pytest.mark.parametrize("statistic", ["mean", "std", "red_minus_blue"])
def test_notebook_recipe_matches_flips_and_colour_jitter(image, statistic):
    reference = per_image(image, T.Compose([T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
                                            T.ColorJitter(**NOTEBOOK_JITTER)]))
    ours = as_pixels(notebook_recipe(np.repeat(image[None], N, axis=0),
                                     np.random.default_rng(0), *PIXEL_LEVELS))
    measure = {
        "mean": lambda b: b.reshape(len(b), -1).mean(1),          # brightness
        "std": lambda b: b.reshape(len(b), -1).std(1),            # contrast
        "red_minus_blue": lambda b: (b[..., 0].astype(float) - b[..., 2]).mean((1, 2)),  # hue/sat
    }[statistic]
    assert ks_statistic(measure(ours), measure(reference)) < 0.1


def test_shift_hue_matches_matplotlib_hsv():
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
    from paddle_resnet.data.augment import _shift_hue
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (3000, 3)) / 255).astype(np.float32)
    x[:50] = x[:50, :1]  # grey pixels: no hue at all
    x[50:100, 1] = x[50:100, 0]  # two channels tied for the maximum or minimum
    shift = rng.uniform(-0.5, 0.5, 3000).astype(np.float32)
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = (hsv[:, 0] + shift) % 1
    ours = np.array([_shift_hue(*pixel, s) for pixel, s in zip(x, shift)])
    np.testing.assert_allclose(ours, hsv_to_rgb(hsv), atol=1e-5)
