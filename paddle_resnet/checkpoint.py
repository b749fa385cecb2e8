"""Checkpoints: one file per state, written atomically (temp file, fsync, rename), so a
crash mid-write leaves the previous checkpoint readable and never a partial file; and a
trained model from one. Below the engine: training, evaluation, export and predict all
read checkpoints through this module, and it imports none of them."""
import io
import os
import pickle
import zipfile
from typing import Any, Dict, List, Optional

import paddle

from .config import load_config
from .device import use_device
from .errors import CheckpointError
from .models import build_model
from .safe_unpickle import ForbiddenGlobal, check_data_only

FORMAT_VERSION = 1
SUFFIX = ".pdckpt"
TEMP_MARK = ".tmp-"


def checkpoint_path(output_dir: str, name: str) -> str:
    return os.path.join(output_dir, name + SUFFIX)


def epoch_checkpoints(epoch: int, improved: bool, every: int) -> List[str]:
    """The names an epoch's end saves: `latest`, `best` if it improved, and `epoch_NNN`
    each `train.checkpoint_every` epochs."""
    return (["latest"] + (["best"] if improved else [])
            + ([f"epoch_{epoch:03d}"] if every and epoch % every == 0 else []))


def last_checkpoint_note(output_dir: str) -> str:
    """What a run stopped at once (a second Ctrl-C) tells its user about resuming."""
    latest = checkpoint_path(output_dir, "latest")
    if not os.path.exists(latest):
        return "no checkpoint was written yet"
    return f"the last checkpoint, {latest}, resumes with --resume"


def save_checkpoint(path: str, state: Dict[str, Any]) -> None:
    state = dict(state, format_version=FORMAT_VERSION)
    buffer = io.BytesIO()
    paddle.save(state, buffer)
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f"{TEMP_MARK}{os.getpid()}-{os.path.basename(path)}")
    try:
        with open(temp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as e:
        try:
            os.remove(temp)
        except OSError:
            pass
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}; the "
                              "previous checkpoint is unchanged; free space or fix "
                              "permissions, then resume") from None
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)  # makes the rename itself durable
        finally:
            os.close(fd)
    except OSError:
        pass


def check_checkpoint_path(path: str) -> None:
    """A path that cannot be a checkpoint fails here, in a second, with what to pass."""
    if os.path.isdir(path):
        held = sorted(name for name in os.listdir(path) if name.endswith(SUFFIX))
        pick = "latest" + SUFFIX if "latest" + SUFFIX in held else (held or [None])[0]
        which = (f"it holds {', '.join(held)}: pass e.g. {os.path.join(path, pick)}"
                 if held else f"it holds no {SUFFIX} file")
        raise CheckpointError(f"checkpoint {path} is a directory, not a {SUFFIX} file; {which}")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist; pass a {SUFFIX} file "
                              "written by tools/train.py (latest or best in the run's "
                              "output directory)")


def load_checkpoint(path: str) -> Dict[str, Any]:
    check_checkpoint_path(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
        check_data_only(data)
        state = paddle.load(io.BytesIO(data), return_numpy=False)
    except ForbiddenGlobal as e:
        raise CheckpointError(f"{path} is not a paddle_resnet checkpoint: it names "
                              f"{e.qualified_name}, which no checkpoint holds, and loading it "
                              "could run code; nothing from it was run. Use a checkpoint "
                              "written by tools/train.py or tools/release.py") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
            zipfile.BadZipFile, OSError, AttributeError, ImportError, IndexError) as e:
        raise CheckpointError(f"{path} is not a readable paddle_resnet checkpoint (truncated "
                              f"or another format: {type(e).__name__}); use the run's "
                              "latest or best checkpoint") from None
    if not isinstance(state, dict) or "model" not in state or "format_version" not in state:
        raise CheckpointError(f"{path} is not a paddle_resnet checkpoint (no model state or "
                              "format version); use a checkpoint written by tools/train.py")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {state['format_version']}, newer "
                              f"than this version of paddle_resnet reads ({FORMAT_VERSION}); "
                              "upgrade paddle_resnet")
    return state


def load_model_state(model: paddle.nn.Layer, state_dict: Dict[str, Any], path: str) -> None:
    """Load weights, naming the first mismatch instead of Paddle's silent partial load."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [k for k in own if k in state_dict and
              list(own[k].shape) != list(state_dict[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            key = shapes[0]
            parts.append(f"{len(shapes)} of another shape (e.g. {key}: "
                         f"{list(state_dict[key].shape)} in the checkpoint, "
                         f"{list(own[key].shape)} in the model)")
        raise CheckpointError(f"{path} does not fit this model: " + "; ".join(parts) +
                              "; check model.name, model.num_classes and model.shortcut")
    model.set_state_dict(state_dict)


def _rename_accumulators(state: Dict[str, Any], names: Dict[str, str]) -> Dict[str, Any]:
    """Rename keys `<param name>_<accumulator>` through `names` (longest prefix wins)."""
    ordered = sorted(names, key=len, reverse=True)
    renamed = {}
    for key, value in state.items():
        prefix = next((p for p in ordered if key.startswith(p + "_")), None)
        if isinstance(value, dict):
            value = _rename_accumulators(value, names)
            renamed[key] = value
        elif prefix is None:
            renamed[key] = value
        else:
            renamed[names[prefix] + key[len(prefix):]] = value
    return renamed


def optimizer_state_for_saving(optimizer, model: paddle.nn.Layer) -> Dict[str, Any]:
    """Paddle keys optimizer state by unique parameter names (`conv2d_38.w_0`) that depend
    on how many layers the process built before; a checkpoint keys it by the model's
    structured names (`layer1.0.conv1.weight`) so it loads into any fresh process."""
    names = {p.name: f"@{structured}" for structured, p in model.named_parameters()}
    return _rename_accumulators(optimizer.state_dict(), names)


def load_optimizer_state(optimizer, model: paddle.nn.Layer, state: Dict[str, Any]) -> None:
    names = {f"@{structured}": p.name for structured, p in model.named_parameters()}
    renamed = _rename_accumulators(state, names)
    orphans = sorted(key[1:] for key in _keys(renamed) if key.startswith("@"))
    if orphans:  # a moment of an optimizer whose parameter this model does not have
        more = f" and {len(orphans) - 1} more" if len(orphans) > 1 else ""
        raise CheckpointError(f"the checkpoint's optimizer state {orphans[0]}{more} found no "
                              "parameter of this model; resume with the run's own config")
    optimizer.set_state_dict(renamed)


def _keys(state: Dict[str, Any]):
    for key, value in state.items():
        if isinstance(value, dict):
            yield from _keys(value)
        else:
            yield key


def load_trained_model(weights: str, config_path: Optional[str] = None, overrides=()):
    """(model in eval mode on the config's device, config, checkpoint progress, device)."""
    state = load_checkpoint(weights)
    cfg = load_config(config_path, overrides, base=None if config_path else state.get("config"))
    check_same_model(weights, state, cfg)
    place = use_device(cfg["device"])
    return model_from_state(state, cfg, weights), cfg, state.get("progress", {}), place


def model_from_state(state: Dict[str, Any], cfg, path: str) -> paddle.nn.Layer:
    """The model `cfg` describes with the checkpoint's weights, in eval mode."""
    model = build_model(cfg["model.name"], **cfg.model_kwargs())
    load_model_state(model, state["model"], path)
    model.eval()
    return model


def check_same_model(weights: str, state: Dict[str, Any], cfg) -> None:
    """Weights of one architecture can fit another of the same shapes (resnet20 and
    plain20 differ only in their shortcuts), so a checkpoint's model section is its
    identity: an override or config that changes it is a mistake, not a new model."""
    saved = (state.get("config") or {}).get("model") or {}
    for key, value in saved.items():
        asked = cfg.get(f"model.{key}", value)
        if asked != value:
            raise CheckpointError(f"{weights} holds a model with model.{key}={value}, but the "
                                  f"config asks for model.{key}={asked}; drop that override "
                                  "(a checkpoint knows its model) or pass a checkpoint "
                                  f"trained with model.{key}={asked}")
