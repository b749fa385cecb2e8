"""`tools/predict.py`: classify image files with a checkpoint or an exported model."""
import json
import os
import sys
import weakref
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .checkpoint import load_trained_model
from .data import MEAN_STD, class_names
from .data.augment import normalize
from .engine.eval_batch import eval_batch_size
from .errors import ConfigError, UserError
from .inference import InferenceModel

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


# Images per forward where nothing chose a number (an export written before export.json
# held its own): a folder of any size classifies in bounded memory.
DEFAULT_PREDICT_BATCH = 256


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def in_batches(classify: Callable[[np.ndarray], np.ndarray], batch: np.ndarray,
               size: int) -> np.ndarray:
    return np.concatenate([classify(batch[start:start + size])
                           for start in range(0, len(batch), size)])


# Each model's chosen batch by place: the choice costs a forward pass, and a caller that
# predicts one image at a time should not pay it per image.
_chosen_batches: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def model_batch(model) -> int:
    """Images per forward for a dygraph `model` in this process, by eval.batch_size's rule
    (engine/eval_batch.py): DenseNet's wide activations take smaller batches on a CPU."""
    import paddle
    place = "cpu" if paddle.device.get_device() == "cpu" else "gpu"
    by_place = _chosen_batches.setdefault(model, {})
    if place not in by_place:
        by_place[place] = eval_batch_size(0, 1, place, model)
    return by_place[place]


def model_classifier(model, tta: str) -> Callable[[np.ndarray], np.ndarray]:
    """Probabilities of a normalised NCHW float32 batch from a dygraph `model` in eval
    mode, on the views eval.tta `tta` names (checked here, before any image is read)."""
    import paddle
    from .engine.eval_engine import views_of
    forward = views_of(tta)(model, "NCHW")  # normalize()'s layout

    def classify(batch: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return softmax(forward(paddle.to_tensor(batch)).numpy())

    return classify


def checkpoint_classifier(weights: str, overrides: Sequence[str]):
    """(probabilities of a normalised batch, class names, mean, std) from a checkpoint, on
    the views its config's eval.tta names (`-o eval.tta=flip`), as tools/eval.py."""
    from .engine.eval_engine import VIEWS
    model, cfg, _, place = load_trained_model(weights, None, overrides)
    print(f"eval.tta={cfg['eval.tta']}: {VIEWS[cfg['eval.tta']][1]}", file=sys.stderr)
    return (model_classifier(model, cfg["eval.tta"]),
            eval_batch_size(cfg["eval.batch_size"], 1, place, model),
            class_names(cfg["data.dataset"], cfg["model.num_classes"]),
            *MEAN_STD[cfg["data.dataset"]])


def exported_classifier(model_dir: str):
    model = InferenceModel(model_dir)
    meta = model.meta

    def classify(batch: np.ndarray) -> np.ndarray:
        out = model(batch)
        return out if meta["output"] == "softmax" else softmax(out)

    return (classify, meta.get("cpu_batch", DEFAULT_PREDICT_BATCH), meta["classes"],
            meta["mean"], meta["std"])


def predict(paths: Sequence[str], weights: Optional[str] = None,
            model_dir: Optional[str] = None, topk: int = 3, as_json: bool = False,
            overrides: Sequence[str] = ()) -> int:
    if model_dir is not None:
        if overrides:
            raise ConfigError(f"-o {overrides[0]}: -o overrides a checkpoint's config (-w); "
                              "an exported model (-m) has none")
        classify, size, names, mean, std = exported_classifier(model_dir)
    else:
        classify, size, names, mean, std = checkpoint_classifier(weights, overrides)
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
        batch = normalize(np.stack(images), mean, std)
        probabilities = in_batches(classify, batch, size)
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
