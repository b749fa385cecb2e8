"""Batches from in-memory uint8 arrays, reproducible from (seed, epoch, batch index)."""
from typing import Iterator, Optional, Tuple

import numpy as np
import paddle

from .augment import AUGMENTATIONS, FLIPS, Parameters
from .cifar import Split
from .device_augment import DeviceAugmentation

# Where augmentation runs (`data.augment_on`); these names are the schema's choices.
AUGMENT_ON = ("host", "device")


class BatchLoader:
    def __init__(self, split: Split, batch_size: int, mean, std, augment: str = "none",
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0,
                 rank: int = 0, world: int = 1, to_tensor=paddle.to_tensor,
                 augment_on: str = "host", layout: str = "NCHW", flip: str = "random"):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}")
        if flip not in FLIPS:
            raise ValueError(f"flip must be one of {', '.join(FLIPS)}")
        if augment_on not in AUGMENT_ON:
            raise ValueError(f"augment_on must be one of {', '.join(AUGMENT_ON)}")
        self.split = split
        self.batch_size = batch_size
        self.mean, self.std = mean, std
        self.augment = AUGMENTATIONS[augment]
        self.first_flips = None  # per image of the split: mirrored in even epochs?
        if flip == "alternating":
            if self.augment.mirror is None:
                raise ValueError(f"flip=alternating needs an augmentation that mirrors "
                                 f"images; {augment!r} does not")
            self.first_flips = np.random.default_rng([seed, 2]).random(len(split)) < 0.5
        # On the device the batch crosses as uint8, a quarter of the float32 bytes, and
        # the pixel work runs there (device_augment.py) with the same random parameters.
        self.on_device = (DeviceAugmentation(augment, mean, std, to_tensor)
                          if augment_on == "device" else None)
        self.shuffle = shuffle
        # Dropping the ragged last batch keeps BN statistics away from tiny batches, but a
        # set smaller than one batch still yields that one batch.
        self.drop_last = drop_last and len(split) >= batch_size
        self.seed = seed
        # Under data parallelism each process takes its slice of every global batch; the
        # global batch (order and augmentation) is the one a single process would draw.
        self.rank, self.world = rank, world
        self.to_tensor = to_tensor  # host array -> tensor on the training device
        self.layout = layout  # of the float32 batches (augment.LAYOUTS)
        if augment_on == "device" and layout != "NCHW":
            raise ValueError("augment_on=device writes NCHW batches; use layout NCHW")

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.split) // self.batch_size
        return -(-len(self.split) // self.batch_size)

    @property
    def num_samples(self) -> int:
        return min(len(self) * self.batch_size, len(self.split))

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.split))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.split))

    def batch_source(self, epoch: int, index: int, order: Optional[np.ndarray] = None
                     ) -> Tuple[np.ndarray, Parameters, np.ndarray]:
        """This process's uint8 images, augmentation parameters and labels of a batch."""
        order = self.order(epoch) if order is None else order
        picked = order[index * self.batch_size:(index + 1) * self.batch_size]
        params = self.augment.draw(len(picked),
                                   np.random.default_rng([self.seed, epoch, index, 1]))
        if self.first_flips is not None:
            params[self.augment.mirror] = self.first_flips[picked] ^ bool(epoch % 2)
        if self.world > 1:  # the global batch's parameters, applied to this slice only
            mine = np.array_split(np.arange(len(picked)), self.world)[self.rank]
            picked = picked[mine]
            params = {name: values[mine] for name, values in params.items()}
        return self.split.images[picked], params, self.split.labels[picked]

    def batch_arrays(self, epoch: int, index: int, order: Optional[np.ndarray] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
        """A batch augmented on the host: float32 images in `layout` and int64 labels."""
        images, params, labels = self.batch_source(epoch, index, order)
        return self.augment.apply(images, params, self.mean, self.std, self.layout), labels

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Tuple[paddle.Tensor, paddle.Tensor]]:
        """Batches `start`.. of `epoch`; resuming at batch k skips straight to it."""
        order = self.order(epoch)
        for index in range(start, len(self)):
            if self.on_device is None:
                images, labels = self.batch_arrays(epoch, index, order)
                yield self.to_tensor(images), self.to_tensor(labels)
            else:
                images, params, labels = self.batch_source(epoch, index, order)
                yield self.on_device(images, params), self.to_tensor(labels)
