"""`tools/predict.py`: classify image files with a trained checkpoint."""
import json
import os
import sys
from typing import Dict, List, Sequence

import numpy as np

from .config import load_config
from .data import CIFAR10_CLASSES, MEAN_STD
from .data.augment import normalize
from .device import use_device
from .engine import checkpoint as ckpt
from .errors import UserError
from .models import build_model

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def collect_files(paths: Sequence[str]) -> List[str]:
    """Files as given, and every image file under given folders (sorted)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, names in sorted(os.walk(path)):
                files += [os.path.join(folder, n) for n in sorted(names)
                          if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES]
        else:
            files.append(path)
    return files


def read_image(path: str) -> np.ndarray:
    """Any size and mode -> 32x32 RGB uint8, as the CIFAR training images."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((32, 32), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise UserError("no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"not a readable image ({type(e).__name__})") from None


def predict(weights: str, paths: Sequence[str], topk: int = 3, as_json: bool = False,
            overrides: Sequence[str] = ()) -> int:
    state = ckpt.load_checkpoint(weights)
    cfg = load_config(None, overrides, base=state.get("config"))
    use_device(cfg["device"])
    model = build_model(cfg["model.name"], **cfg.model_kwargs())
    ckpt.load_model_state(model, state["model"], weights)
    model.eval()
    names = (list(CIFAR10_CLASSES) if cfg["data.dataset"] == "cifar10"
             else [str(i) for i in range(cfg["model.num_classes"])])
    files = collect_files(paths)
    if not files:
        raise UserError(f"no image files found in {', '.join(paths)}; pass image files or "
                        f"folders holding {', '.join(sorted(IMAGE_SUFFIXES))} files")
    images, good, failures = [], [], 0
    results: List[Dict] = []
    for path in files:
        try:
            images.append(read_image(path))
            good.append(path)
        except UserError as e:
            failures += 1
            print(f"{path}: error: {e}", file=sys.stderr)
            results.append({"file": path, "error": str(e)})
    if images:
        import paddle
        import paddle.nn.functional as F
        batch = normalize(np.stack(images), *MEAN_STD[cfg["data.dataset"]])
        probabilities = []
        with paddle.no_grad():
            for start in range(0, len(batch), 256):
                logits = model(paddle.to_tensor(batch[start:start + 256]))
                probabilities.append(F.softmax(logits, axis=1).numpy())
        probabilities = np.concatenate(probabilities)
        k = min(topk, len(names))
        for path, p in zip(good, probabilities):
            best = np.argsort(-p)[:k]
            top = [{"class": names[i], "index": int(i), "probability": float(p[i])} for i in best]
            results.append({"file": path, "top": top})
            if not as_json:
                print(f"{path}: " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%"
                                             for t in top))
    if as_json:
        order = {path: i for i, path in enumerate(files)}
        print(json.dumps(sorted(results, key=lambda r: order[r["file"]]), indent=1))
    return 1 if failures else 0
