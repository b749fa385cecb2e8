"""The library's surface, as `paddle_resnet.<name>`: a model with or without the shipped
weights, a config, a training run, an evaluation and predictions, each one call.

    model = create_model("resnet20", pretrained=True)       # no data, no network
    result = predict(model, ["cat.png", "ship.jpg"])        # result.classes, .probabilities
    metrics = evaluate(model, data_file="cifar-10-python.tar.gz")
    summary = train(load_config("configs/resnet20.yaml", ["train.epochs=5"]))
"""
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import checkpoint as ckpt
from .config import Config
from .config import load_config as _load_config
from .data import MEAN_STD, NUM_CLASSES, BatchLoader, class_names, load_split
from .data.augment import normalize
from .errors import CheckpointError, UserError
from .models import build_model
from .models import list_models as _registered_models
from .prediction import in_batches, model_batch, model_classifier, read_image
from .paths import PRETRAINED_DIR
from .runtime import prepare_process

# The weights that come with the repository (pretrained/README.md says how each was made
# and which to pick), by model name.
SHIPPED_WEIGHTS = {"resnet20": "resnet20_cifar10.pdckpt"}

Images = Union[np.ndarray, Sequence[Union[str, os.PathLike]]]


class Prediction(NamedTuple):
    classes: List[str]  # the most probable class of each image
    indices: np.ndarray  # its label index, int64 [N]
    probabilities: np.ndarray  # softmax over every class, float32 [N, classes]


def list_models() -> List[str]:
    """Every model name `create_model` and `model.name` take."""
    return _registered_models()


def list_pretrained() -> List[str]:
    """The model names with shipped weights (`create_model(name, pretrained=True)`)."""
    return sorted(SHIPPED_WEIGHTS)


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """defaults < the yaml file < `overrides` ("key.sub=value"), validated."""
    return _load_config(path, overrides)


def _shipped_weights(name: str) -> str:
    if name not in SHIPPED_WEIGHTS:
        raise CheckpointError(f"no shipped weights for {name!r}; models with weights: "
                              f"{', '.join(list_pretrained())} (or pass pretrained=PATH)")
    path = os.path.join(PRETRAINED_DIR, SHIPPED_WEIGHTS[name])
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is missing: the shipped weights come with a clone of "
                              "the repository; pass pretrained=PATH to a .pdckpt instead")
    return path


def create_model(name: str, pretrained: Union[bool, str, os.PathLike] = False, **kwargs):
    """A registered model; with `pretrained=True` the shipped weights for `name`, with a
    path the weights of that checkpoint (which must hold a `name`), in eval mode. Builder
    arguments (`num_classes=100`, ...) are for new models; a checkpoint brings its own."""
    if pretrained is False or pretrained is None:
        return build_model(name, **kwargs)
    path = _shipped_weights(name) if pretrained is True else os.fspath(pretrained)
    state = ckpt.load_checkpoint(path)
    cfg = _load_config(base=state.get("config"), overrides=[f"model.name={name}"])
    ckpt.check_same_model(path, state, cfg)
    if kwargs:
        raise UserError(f"create_model({name!r}, pretrained=...) takes no builder arguments "
                        f"({', '.join(sorted(kwargs))}): the checkpoint's model is fixed")
    return ckpt.model_from_state(state, cfg, path)


def train(config: Union[Config, str], overrides: Sequence[str] = (),
          resume: Optional[str] = None) -> Dict[str, Any]:
    """One training run in this process (tools/train.py also starts one process per core);
    returns its summary: best top-1, its epoch, the output directory."""
    from .engine.trainer import Trainer
    cfg = config if isinstance(config, Config) else _load_config(config, overrides)
    return Trainer(cfg, resume=resume).fit()


def _batch_size(requested: Optional[int], model) -> int:
    if requested is None:
        return model_batch(model)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise UserError(f"batch_size={requested!r}: pass a positive integer, or None to let "
                        "the package choose one for the model")
    return requested


def evaluate(model, data_file: Optional[str] = None, dataset: str = "cifar10",
             split: str = "test", batch_size: Optional[int] = None,
             tta: str = "none") -> Dict[str, float]:
    """Loss, top-1 and top-5 (percent) of `model` on a whole split of the dataset;
    `tta="flip"` averages each image's logits with its mirror's (config key eval.tta).
    `batch_size=None` takes eval.batch_size's choice for the model (smaller for DenseNet
    on a CPU, where batches of 256 fault their activations in page by page)."""
    prepare_process()
    from .engine.eval_engine import views_of
    from .engine.evaluator import evaluate as _evaluate
    from .data.cifar import resolve_archive
    forward = views_of(tta)(model, "NCHW")  # BatchLoader's layout
    archive, _ = resolve_archive(dataset, data_file)
    data = load_split(dataset, split, archive)
    loader = BatchLoader(data, _batch_size(batch_size, model), *MEAN_STD[dataset])
    result = _evaluate(model, loader, NUM_CLASSES[dataset], forward=forward)
    return {key: result[key] for key in ("loss", "top1", "top5", "samples")}


def _as_batch(images: Images) -> np.ndarray:
    if isinstance(images, np.ndarray):
        batch = images[None] if images.ndim == 3 else images
        if batch.ndim != 4 or batch.shape[1:] != (32, 32, 3) or batch.dtype != np.uint8:
            raise UserError(f"images of shape {images.shape} and dtype {images.dtype}: pass "
                            "uint8 RGB images as N x 32 x 32 x 3 (or 32 x 32 x 3), or paths")
        return batch
    batch = []
    for path in images:
        try:
            batch.append(read_image(os.fspath(path)))
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
    if not batch:
        raise UserError("no images to predict; pass image paths or a uint8 array")
    return np.stack(batch)


def predict(model, images: Images, dataset: str = "cifar10", tta: str = "none",
            batch_size: Optional[int] = None) -> Prediction:
    """Classes and probabilities of `images`: image files (any size, resized to 32x32) or
    uint8 RGB arrays, normalised as the model was trained on `dataset`; `tta="flip"`
    averages each image's logits with its mirror's (config key eval.tta). Images go
    through the model `batch_size` at a time (None: as `evaluate`)."""
    prepare_process()
    classify = model_classifier(model, tta)
    batch = normalize(_as_batch(images), *MEAN_STD[dataset])
    was_training = model.training
    model.eval()
    try:
        size = _batch_size(batch_size, model)
        probabilities = in_batches(classify, batch, size).astype(np.float32)
    finally:
        model.train() if was_training else model.eval()  # Paddle < 3.3: train() takes no mode
    indices = probabilities.argmax(axis=1)
    names = class_names(dataset, probabilities.shape[1])
    return Prediction([names[i] for i in indices], indices.astype(np.int64), probabilities)
