"""Whole-batch augmentation of uint8 NHWC images with numpy.

Each function takes a batch and a numpy Generator, so a batch's augmentation is fixed
by (seed, epoch, batch index): that is what makes resuming mid-epoch exact.
"""
import numpy as np

# The notebook recipe's colour jitter, as factors drawn uniformly from [1-x, 1+x]
# (hue: a shift in [-x, x] of a full turn), like paddle.vision.transforms.ColorJitter.
# The notebook's own strengths were not available to us; these are common values.
NOTEBOOK_JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1}


def pad_crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """The standard CIFAR augmentation (He et al. Sec. 4.2): zero-pad by `pad`, take a
    random 32x32 crop, flip horizontally with probability 0.5. One gather does all."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top = rng.integers(0, 2 * pad + 1, size=n)
    left = rng.integers(0, 2 * pad + 1, size=n)
    flip = rng.random(n) < 0.5
    rows = top[:, None] + np.arange(h)
    cols = np.where(flip[:, None], left[:, None] + np.arange(w - 1, -1, -1),
                    left[:, None] + np.arange(w))
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _flip(images: np.ndarray, rng: np.random.Generator, axis: int) -> np.ndarray:
    flip = rng.random(len(images)) < 0.5
    out = images.copy()
    out[flip] = np.flip(images[flip], axis=axis)
    return out


def _grey(images: np.ndarray) -> np.ndarray:
    # ITU-R 601 luma, as PIL's convert("L") used by Paddle's colour transforms.
    return images @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)


def shift_hue(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Rotate the HSV hue of float32 RGB images in [0, 1] by `shift` turns: PIL's and
    matplotlib's HSV conversion, written for float32 batches (matplotlib's float64 round
    trip took 2.3x as long)."""
    maxc, minc = x.max(-1), x.min(-1)
    delta = maxc - minc
    safe = np.where(delta > 0, delta, 1).astype(np.float32)
    r, g, b = ((maxc - x[..., c]) / safe for c in range(3))  # distances from the max
    hue = np.where(x[..., 0] == maxc, b - g, np.where(x[..., 1] == maxc, 2 + r - b, 4 + g - r))
    hue = (np.where(delta > 0, hue / 6 % 1, 0) + shift) % 1
    sat = np.where(maxc > 0, delta / np.where(maxc > 0, maxc, 1), 0)
    sector = np.floor(hue * 6)
    frac = hue * 6 - sector
    sector = sector.astype(np.int64) % 6
    v = maxc
    p, q, t = v * (1 - sat), v * (1 - sat * frac), v * (1 - sat * (1 - frac))
    return np.stack([np.choose(sector, [v, q, p, p, t, v]),
                     np.choose(sector, [t, v, v, q, p, p]),
                     np.choose(sector, [p, p, t, v, v, q])], axis=-1).astype(np.float32)


def colour_jitter(images: np.ndarray, rng: np.random.Generator,
                  brightness: float, contrast: float, saturation: float,
                  hue: float) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter with one factor per image."""
    n = len(images)
    x = images.astype(np.float32) / 255.0

    def factor(amount):
        return rng.uniform(1 - amount, 1 + amount, size=(n, 1, 1, 1)).astype(np.float32)

    x = np.clip(x * factor(brightness), 0, 1)
    mean_grey = _grey(x).mean(axis=(1, 2))[:, None, None, None]
    x = np.clip(mean_grey + factor(contrast) * (x - mean_grey), 0, 1)
    grey = _grey(x)[..., None]
    x = np.clip(grey + factor(saturation) * (x - grey), 0, 1)
    x = shift_hue(x, rng.uniform(-hue, hue, size=(n, 1, 1)).astype(np.float32))
    return np.round(x * 255.0).astype(np.uint8)


def notebook_recipe(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The Paddle notebook's training transforms: random horizontal and vertical flips,
    then colour jitter."""
    images = _flip(images, rng, axis=2)
    images = _flip(images, rng, axis=1)
    return colour_jitter(images, rng, **NOTEBOOK_JITTER)


AUGMENTATIONS = {"standard": pad_crop_flip, "notebook": notebook_recipe, "none": None}


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW, per-channel standardised."""
    scale = np.asarray(std, dtype=np.float32) * 255.0
    x = (images.astype(np.float32) - np.asarray(mean, dtype=np.float32) * 255.0) / scale
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
