"""From a config to the objects a run trains with, in the order Paddle documents."""
import functools
from dataclasses import dataclass
from typing import Callable, Optional

import paddle

from ..config import Config
from ..data import MEAN_STD, BatchLoader, load_cifar
from ..device import (MixedPrecision, Processes, convert_sync_bn, data_parallel,
                      channel_capacity, open_host_channel, to_device, use_device)
from ..errors import ConfigError
from ..speed import SpeedPlan, plan_speed
from .eval_batch import eval_batch_size
from .eval_engine import resolve_engine
from ..optim import build_optimizer, build_schedule
from .preflight import check_batch
from .step import training_model


@dataclass
class TrainingParts:
    place: str
    speed: SpeedPlan
    amp: MixedPrecision
    eval_inference: bool  # evaluation through Paddle Inference
    train_loader: BatchLoader
    eval_loader: BatchLoader
    eval_name: str  # "val" or "test"
    model: paddle.nn.Layer  # what checkpoints hold: no wrapper in its names
    forward_model: paddle.nn.Layer  # what a step calls: DataParallel over several processes
    schedule: paddle.optimizer.lr.LRScheduler
    optimizer: paddle.optimizer.Optimizer
    procs: Processes  # the run's processes, with their shared-memory channel if opened
    average_gradients: Optional[Callable[[], None]] = None  # between backward and step
    exchange_note: str = ""  # why the shared-memory channel is not used, if asked for


def build_training(cfg: Config, procs: Processes, say: Callable[[str], None]) -> TrainingParts:
    """Checks that can fail do so before any data is read or model built."""
    batch = cfg["train.batch_size"]
    check_batch(batch, procs.world, cfg["eval.batch_size"])
    place = use_device(cfg["device"])
    eval_inference = resolve_engine(cfg["eval.engine"], place,
                                    cfg["eval.precision"]) == "inference"
    speed = plan_speed(cfg, place, procs.world, say=say)
    amp = MixedPrecision(cfg["speed.amp"], cfg["speed.amp_dtype"], cfg["speed.loss_scale"],
                         place)
    paddle.seed(cfg["seed"])
    say(f"loading {cfg['data.dataset']} from "
        f"{cfg['data.data_file'] or 'the paddle dataset cache'}")
    train, evaluation, _ = load_cifar(cfg["data.dataset"], cfg["data.data_file"],
                                      cfg["data.train_samples"], cfg["data.test_samples"],
                                      cfg["data.val_samples"])
    if batch > len(train):
        raise ConfigError(f"train.batch_size = {batch} is larger than the {len(train):,} "
                          "training images, so an epoch would be one short step; lower "
                          "train.batch_size or raise data.train_samples")
    mean, std = MEAN_STD[cfg["data.dataset"]]
    shard = {"rank": procs.rank, "world": procs.world,
             "to_tensor": functools.partial(to_device, place=place,
                                            pin_memory=cfg["speed.pin_memory"])}
    # Host augmentation writes batches in the model's layout; the device's writes NCHW.
    layout = speed.data_format if cfg["data.augment_on"] == "host" else "NCHW"
    train_loader = BatchLoader(train, batch, mean, std, augment=cfg["data.augment"],
                               shuffle=True, drop_last=True, seed=cfg["seed"],
                               flip=cfg["data.flip"],
                               augment_on=cfg["data.augment_on"], layout=layout, **shard)
    model = training_model(cfg["model.name"], speed, layout, **cfg.model_kwargs())
    speed = speed.as_applied(model.speed_paths)
    eval_batch = eval_batch_size(cfg["eval.batch_size"], procs.world, place, model, batch)
    eval_loader = BatchLoader(evaluation, eval_batch, mean, std,
                              layout="NCHW" if eval_inference else layout, **shard)
    if cfg["speed.to_static"]:
        model = paddle.jit.to_static(model)
    model = convert_sync_bn(model, procs, cfg["dist.sync_bn"], place)
    schedule = build_schedule(cfg, len(train_loader))
    optimizer = build_optimizer(cfg, model.parameters(), schedule)
    # Paddle's AMP guide and PaddleClas: decorate first, then wrap in DataParallel, so that
    # the reducer sees the parameters the optimizer updates.
    model, optimizer = amp.decorate(model, optimizer)
    procs, exchange_note = open_host_channel(procs, cfg["dist.shared_memory"], place,
                                             channel_capacity(model))
    forward_model, average_gradients = data_parallel(model, procs)
    return TrainingParts(place, speed, amp, eval_inference, train_loader, eval_loader,
                         "val" if cfg["data.val_samples"] else "test", model,
                         forward_model, schedule, optimizer, procs, average_gradients,
                         exchange_note)
