"""Whole-batch augmentation of uint8 NHWC images into standardised float32 batches, NCHW
(Paddle's default) or NHWC (channels-last models), compiled with numba.

A recipe is two steps. `draw` takes every random parameter of a batch (crop offsets,
flips, jitter factors; one row per image) from a numpy Generator up front, so a batch's
augmentation is fixed by (seed, epoch, batch index): that is what makes resuming
mid-epoch exact, and lets each process of a data-parallel run apply the global batch's
parameters to its own slice only. `apply` then does the pixel work, standardisation
included, as one compiled pass per image, images in parallel
(benchmarks/data_pipeline.py measures it against the notebook's per-image PIL pipeline).
`device_augment.py` applies the same parameters with Paddle operators on the training
device instead.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numba
import numpy as np

Parameters = Dict[str, np.ndarray]

# The notebook recipe's colour jitter, as factors drawn uniformly from [1-x, 1+x]
# (hue: a shift in [-x, x] of a full turn), like paddle.vision.transforms.ColorJitter.
# The notebook's own strengths were not available to us; these are common values.
NOTEBOOK_JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1}

# ITU-R 601 luma, as PIL's convert("L") used by Paddle's colour transforms.
LUMA = (np.float32(0.299), np.float32(0.587), np.float32(0.114))
# Float32 constants for the kernels: a bare 1 or 0.5 there is a float64 and would turn
# every pixel's arithmetic into float64 and back.
ZERO, HALF, ONE, TWO, FOUR, SIX = (np.float32(v) for v in (0, 0.5, 1, 2, 4, 6))
LEVELS = np.float32(255)

_kernel = numba.njit(parallel=True, cache=True)


def standardisation(mean, std):
    """(scale, offset) with pixel * scale + offset == (pixel / 255 - mean) / std."""
    std = np.asarray(std, dtype=np.float32)
    return ((1 / (255 * std)).astype(np.float32),
            (-np.asarray(mean, dtype=np.float32) / std).astype(np.float32))


LAYOUTS = ("NCHW", "NHWC")


def _output(images: np.ndarray, layout: str):
    """(the batch in `layout`, the same memory indexed [image, channel, y, x]): the
    kernels write through the second, so an NHWC batch is written, not transposed."""
    n, h, w, channels = images.shape
    if layout == "NCHW":
        out = np.empty((n, channels, h, w), dtype=np.float32)
        return out, out
    if layout != "NHWC":
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    out = np.empty((n, h, w, channels), dtype=np.float32)
    return out, out.transpose(0, 3, 1, 2)


@_kernel
def _crop_flip(images, shift_y, shift_x, flip, scale, offset, out):
    n, h, w, channels = images.shape
    for i in numba.prange(n):
        for c in range(channels):
            padding = offset[c]  # a zero pixel, standardised
            for y in range(h):
                sy = y + shift_y[i]
                for x in range(w):
                    sx = (w - 1 - x if flip[i] else x) + shift_x[i]
                    inside = 0 <= sy < h and 0 <= sx < w
                    out[i, c, y, x] = (images[i, sy, sx, c] * scale[c] + offset[c]
                                       if inside else padding)


CROP_PADDING = 4  # pixels of zero padding around the image before the random crop


def draw_crop_flip(n: int, rng: np.random.Generator) -> Parameters:
    """Crop offsets relative to the unpadded image, in [-4, 4], and horizontal flips."""
    pad = CROP_PADDING
    return {"shift_y": rng.integers(0, 2 * pad + 1, size=n) - pad,
            "shift_x": rng.integers(0, 2 * pad + 1, size=n) - pad,
            "flip": rng.random(n) < 0.5}


def apply_crop_flip(images: np.ndarray, params: Parameters, mean, std,
                    layout: str = "NCHW") -> np.ndarray:
    out, planar = _output(images, layout)
    _crop_flip(np.ascontiguousarray(images), params["shift_y"], params["shift_x"],
               params["flip"], *standardisation(mean, std), planar)
    return out


@numba.njit(inline="always")
def _hsv_channel(v, chroma, hue, n):
    # One channel of HSV -> RGB from the value, the chroma (v - min) and the hue in
    # [0, 6); n = 5, 3, 1 for red, green, blue. Branch-free, so the loop vectorises.
    k = n + hue
    k = k - SIX if k >= SIX else k
    return v - chroma * max(min(min(k, FOUR - k), ONE), ZERO)


@numba.njit(inline="always")
def _shift_hue(r, g, b, shift):
    """Rotate the HSV hue of one RGB pixel in [0, 1] by `shift` turns, keeping saturation
    and value: PIL's and matplotlib's HSV model (grey pixels have no hue and stay)."""
    v = max(max(r, g), b)
    chroma = v - min(min(r, g), b)
    inverse = ONE / (chroma if chroma > ZERO else ONE)
    hue = FOUR + (r - g) * inverse
    hue = (TWO + (b - r) * inverse) if g == v else hue
    hue = ((g - b) * inverse) if r == v else hue
    hue += SIX * shift  # in [-3, 9): one wrap either way brings it into [0, 6)
    hue = hue + SIX if hue < ZERO else hue
    hue = hue - SIX if hue >= SIX else hue
    return (_hsv_channel(v, chroma, hue, np.float32(5)),
            _hsv_channel(v, chroma, hue, np.float32(3)),
            _hsv_channel(v, chroma, hue, ONE))


@numba.njit(inline="always")
def _unit(x):
    return min(max(x, ZERO), ONE)


@_kernel
def _flip_jitter(images, hflip, vflip, brightness, contrast, saturation, hue, scale, offset,
                 out):
    # Float32 throughout; each step clips to [0, 1] as PIL's uint8 images do, and the
    # result is rounded to a uint8 level before standardisation, as PIL's would be.
    # Performance pitfall: LLVM only vectorises the per-pixel loop when it reads nothing
    # but locals and its own planar rows. A per-image factor read from its array inside
    # the loop (out might alias it) or one division by a value that can be zero leaves
    # the loop scalar and the kernel 5x slower.
    n, h, w, _ = images.shape
    wr, wg, wb = LUMA
    for i in numba.prange(n):
        red = np.empty(h * w, dtype=np.float32)
        green = np.empty(h * w, dtype=np.float32)
        blue = np.empty(h * w, dtype=np.float32)
        level = np.float32(brightness[i] / 255)
        for y in range(h):
            row = images[i, h - 1 - y if vflip[i] else y]
            for x in range(w):
                sx = w - 1 - x if hflip[i] else x
                red[y * w + x] = min(row[sx, 0] * level, ONE)
                green[y * w + x] = min(row[sx, 1] * level, ONE)
                blue[y * w + x] = min(row[sx, 2] * level, ONE)
        grey_sum = ZERO  # contrast blends with the mean grey after brightness
        for p in range(h * w):
            grey_sum += wr * red[p] + wg * green[p] + wb * blue[p]
        mean_grey = grey_sum / np.float32(h * w)
        k, s, turn = contrast[i], saturation[i], hue[i]
        scale_r, scale_g, scale_b = scale[0], scale[1], scale[2]
        offset_r, offset_g, offset_b = offset[0], offset[1], offset[2]
        out_r, out_g, out_b = out[i, 0], out[i, 1], out[i, 2]
        for p in range(h * w):
            r = _unit(mean_grey + k * (red[p] - mean_grey))
            g = _unit(mean_grey + k * (green[p] - mean_grey))
            b = _unit(mean_grey + k * (blue[p] - mean_grey))
            grey = wr * r + wg * g + wb * b
            r, g, b = _shift_hue(_unit(grey + s * (r - grey)), _unit(grey + s * (g - grey)),
                                 _unit(grey + s * (b - grey)), turn)
            out_r[p] = np.floor(r * LEVELS + HALF) * scale_r + offset_r
            out_g[p] = np.floor(g * LEVELS + HALF) * scale_g + offset_g
            out_b[p] = np.floor(b * LEVELS + HALF) * scale_b + offset_b


def draw_flip_jitter(n: int, rng: np.random.Generator) -> Parameters:
    """Horizontal and vertical flips and one brightness, contrast, saturation and hue
    factor per image (NOTEBOOK_JITTER)."""
    jitter = NOTEBOOK_JITTER
    params = {"hflip": rng.random(n) < 0.5, "vflip": rng.random(n) < 0.5}
    for name in ("brightness", "contrast", "saturation"):
        params[name] = rng.uniform(1 - jitter[name], 1 + jitter[name], size=n
                                   ).astype(np.float32)
    params["hue"] = rng.uniform(-jitter["hue"], jitter["hue"], size=n).astype(np.float32)
    return params


def apply_flip_jitter(images: np.ndarray, params: Parameters, mean, std,
                      layout: str = "NCHW") -> np.ndarray:
    out, _ = _output(images, layout)
    n = len(images)
    # [image, channel, pixel] rows over the same memory
    rows = out.reshape(n, 3, -1) if layout == "NCHW" else out.reshape(n, -1, 3).transpose(0, 2, 1)
    _flip_jitter(np.ascontiguousarray(images), params["hflip"], params["vflip"],
                 params["brightness"], params["contrast"], params["saturation"], params["hue"],
                 *standardisation(mean, std), rows)
    return out


@_kernel
def _standardise(images, scale, offset, out):
    n, h, w, channels = images.shape
    for i in numba.prange(n):
        for c in range(channels):
            for y in range(h):
                for x in range(w):
                    out[i, c, y, x] = images[i, y, x, c] * scale[c] + offset[c]


def normalize(images: np.ndarray, mean, std, layout: str = "NCHW") -> np.ndarray:
    """uint8 NHWC -> float32 in `layout`, per-channel standardised: (x / 255 - mean) / std."""
    out, planar = _output(images, layout)
    _standardise(np.ascontiguousarray(images), *standardisation(mean, std), planar)
    return out


def draw_nothing(n: int, rng: np.random.Generator) -> Parameters:
    return {}


def apply_nothing(images: np.ndarray, params: Parameters, mean, std,
                  layout: str = "NCHW") -> np.ndarray:
    return normalize(images, mean, std, layout)


@dataclass(frozen=True)
class Recipe:
    """An augmentation: `recipe(images, rng, mean, std)` is `apply(images, draw(len(images),
    rng), mean, std)`."""
    draw: Callable[[int, np.random.Generator], Parameters]
    apply: Callable[..., np.ndarray]  # (images, params, mean, std, layout="NCHW")
    mirror: Optional[str] = None  # the parameter that flips images left-right, if any

    def __call__(self, images: np.ndarray, rng: np.random.Generator, mean, std) -> np.ndarray:
        return self.apply(images, self.draw(len(images), rng), mean, std)


# The standard CIFAR augmentation (He et al. Sec. 4.2): zero-pad by 4, take a random 32x32
# crop, flip horizontally with probability 0.5.
pad_crop_flip = Recipe(draw_crop_flip, apply_crop_flip, mirror="flip")
# The Paddle notebook's training transforms: random horizontal and vertical flips, then
# brightness, contrast, saturation and hue jitter with one factor per image.
notebook_recipe = Recipe(draw_flip_jitter, apply_flip_jitter, mirror="hflip")
no_augmentation = Recipe(draw_nothing, apply_nothing)

# `data.augment` -> recipe; these names are the schema's choices.
AUGMENTATIONS = {"standard": pad_crop_flip, "notebook": notebook_recipe,
                 "none": no_augmentation}

# How a recipe's left-right flips fall across epochs (`data.flip`; the schema's choices):
# `random`, drawn anew for every image each epoch; or `alternating` (Jordan, "94% on
# CIFAR-10 in 3.29 seconds on a single GPU", arXiv:2404.00498, Sec. 3.6): drawn in the
# first epoch, then each image the other way round from its previous epoch, so that
# every pair of epochs shows every image both ways; short runs gain the most.
FLIPS = ("random", "alternating")
