"""The augmentation recipes of augment.py as Paddle operators on the training device.

With `data.augment_on: device` the loader sends each batch to the device as uint8 NHWC
pixels with its random parameters (drawn on the host by the recipe's `draw`, from the same
generator, so order, augmentation and exact resume are unchanged), and the crop, flips,
colour jitter and standardisation run there as whole-batch tensor operations. That frees
the host on a GPU machine and moves a quarter of the bytes over PCIe. The output equals the
host kernels' to float rounding (tests/test_device_augment.py runs both on the CPU).
"""
from typing import Callable, Dict

import numpy as np
import paddle

from .augment import LUMA, Parameters, standardisation

Tensors = Dict[str, paddle.Tensor]


def _gather_pixels(images: paddle.Tensor, rows: paddle.Tensor, cols: paddle.Tensor
                   ) -> paddle.Tensor:
    """images[i, rows[i, y], cols[i, x], :] for every image i, as [n, h, w, c]; rows and
    cols must be in range."""
    n, h, w, c = images.shape
    base = paddle.arange(n, dtype="int64").reshape([n, 1, 1]) * (h * w)
    index = base + rows.reshape([n, -1, 1]) * w + cols.reshape([n, 1, -1])
    picked = paddle.gather(images.reshape([n * h * w, c]), index.flatten())
    return picked.reshape([n, rows.shape[1], cols.shape[1], c])


def _positions(length: int, n: int) -> paddle.Tensor:
    return paddle.arange(length, dtype="int64").reshape([1, length]).expand([n, length])


def _mirrored(positions: paddle.Tensor, flip: paddle.Tensor) -> paddle.Tensor:
    length = positions.shape[1]
    return paddle.where(flip.reshape([-1, 1]), length - 1 - positions, positions)


def _planar(pixels: paddle.Tensor) -> paddle.Tensor:
    return paddle.transpose(pixels, [0, 3, 1, 2])


def crop_flip(images: paddle.Tensor, params: Tensors, scale: paddle.Tensor,
              offset: paddle.Tensor) -> paddle.Tensor:
    """Zero-pad, random crop (shift_y, shift_x) and horizontal flip, standardised."""
    n, h, w, _ = images.shape
    rows = _positions(h, n) + params["shift_y"].reshape([n, 1])
    cols = _mirrored(_positions(w, n), params["flip"]) + params["shift_x"].reshape([n, 1])
    inside = (((rows >= 0) & (rows < h)).reshape([n, h, 1, 1])
              & ((cols >= 0) & (cols < w)).reshape([n, 1, w, 1]))
    picked = _gather_pixels(images, rows.clip(0, h - 1), cols.clip(0, w - 1))
    standardised = picked.astype("float32") * scale + offset
    # Outside the image is zero padding: a zero pixel standardised is the offset.
    return _planar(paddle.where(inside, standardised, offset.expand_as(standardised)))


def _unit(x: paddle.Tensor) -> paddle.Tensor:
    return x.clip(0.0, 1.0)


def _grey(rgb: paddle.Tensor) -> paddle.Tensor:
    red, green, blue = (float(w) for w in LUMA)  # scalars: no weight tensor per batch
    return (red * rgb[..., 0:1] + green * rgb[..., 1:2]) + blue * rgb[..., 2:3]


def _shift_hue(rgb: paddle.Tensor, shift: paddle.Tensor) -> paddle.Tensor:
    """augment._shift_hue on every pixel at once: the HSV hue rotated by `shift` turns."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = paddle.maximum(paddle.maximum(r, g), b)
    chroma = value - paddle.minimum(paddle.minimum(r, g), b)
    inverse = 1.0 / paddle.where(chroma > 0, chroma, paddle.ones_like(chroma))
    hue = 4.0 + (r - g) * inverse
    hue = paddle.where(g == value, 2.0 + (b - r) * inverse, hue)
    hue = paddle.where(r == value, (g - b) * inverse, hue)
    hue = hue + 6.0 * shift
    hue = paddle.where(hue < 0, hue + 6.0, hue)
    hue = paddle.where(hue >= 6, hue - 6.0, hue)
    channels = []
    for n in (5.0, 3.0, 1.0):  # red, green, blue (see augment._hsv_channel)
        k = hue + n
        k = paddle.where(k >= 6, k - 6.0, k)
        channels.append(value - chroma * paddle.minimum(k, 4.0 - k).clip(0.0, 1.0))
    return paddle.stack(channels, axis=-1)


def flip_jitter(images: paddle.Tensor, params: Tensors, scale: paddle.Tensor,
                offset: paddle.Tensor) -> paddle.Tensor:
    """Horizontal and vertical flips, then brightness, contrast, saturation and hue, each
    step clipped to [0, 1] and the result rounded to a uint8 level, as augment.py does."""
    n, h, w, _ = images.shape
    rows = _mirrored(_positions(h, n), params["vflip"])
    cols = _mirrored(_positions(w, n), params["hflip"])

    def per_image(name):
        return params[name].reshape([n, 1, 1, 1])

    rgb = _gather_pixels(images, rows, cols).astype("float32")
    rgb = paddle.minimum(rgb * (per_image("brightness") / 255.0), paddle.ones_like(rgb))
    mean_grey = _grey(rgb).mean(axis=[1, 2, 3], keepdim=True)
    rgb = _unit(mean_grey + per_image("contrast") * (rgb - mean_grey))
    grey = _grey(rgb)
    rgb = _unit(grey + per_image("saturation") * (rgb - grey))
    rgb = _shift_hue(rgb, params["hue"].reshape([n, 1, 1]))
    return _planar(paddle.floor(rgb * 255.0 + 0.5) * scale + offset)


def standardise(images: paddle.Tensor, params: Tensors, scale: paddle.Tensor,
                offset: paddle.Tensor) -> paddle.Tensor:
    return _planar(images.astype("float32") * scale + offset)


DEVICE_RECIPES: Dict[str, Callable] = {"standard": crop_flip, "notebook": flip_jitter,
                                       "none": standardise}


class DeviceAugmentation:
    """(uint8 NHWC host images, host parameters) -> a standardised float32 NCHW batch
    computed on the device that `to_tensor` puts tensors on."""

    def __init__(self, recipe: str, mean, std, to_tensor=paddle.to_tensor):
        self.apply = DEVICE_RECIPES[recipe]
        self.to_tensor = to_tensor
        self.scale, self.offset = (to_tensor(v) for v in standardisation(mean, std))

    def __call__(self, images: np.ndarray, params: Parameters) -> paddle.Tensor:
        tensors = {name: self.to_tensor(values) for name, values in params.items()}
        return self.apply(self.to_tensor(np.ascontiguousarray(images)), tensors,
                          self.scale, self.offset)
