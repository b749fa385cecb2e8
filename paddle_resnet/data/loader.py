"""Batches from in-memory uint8 arrays, reproducible from (seed, epoch, batch index)."""
from typing import Iterator, Optional, Tuple

import numpy as np
import paddle

from .augment import AUGMENTATIONS
from .cifar import Split


class BatchLoader:
    def __init__(self, split: Split, batch_size: int, mean, std, augment: str = "none",
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0,
                 rank: int = 0, world: int = 1, to_tensor=paddle.to_tensor):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}")
        self.split = split
        self.batch_size = batch_size
        self.mean, self.std = mean, std
        self.augment = AUGMENTATIONS[augment]
        self.shuffle = shuffle
        # Dropping the ragged last batch keeps BN statistics away from tiny batches, but a
        # set smaller than one batch still yields that one batch.
        self.drop_last = drop_last and len(split) >= batch_size
        self.seed = seed
        # Under data parallelism each process takes its slice of every global batch; the
        # global batch (order and augmentation) is the one a single process would draw.
        self.rank, self.world = rank, world
        self.to_tensor = to_tensor  # host array -> tensor on the training device

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

    def batch_arrays(self, epoch: int, index: int, order: Optional[np.ndarray] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
        order = self.order(epoch) if order is None else order
        picked = order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.augment(self.split.images[picked],
                              np.random.default_rng([self.seed, epoch, index, 1]),
                              self.mean, self.std)
        labels = self.split.labels[picked]
        if self.world > 1:
            mine = np.array_split(np.arange(len(picked)), self.world)[self.rank]
            images, labels = images[mine], labels[mine]
        return images, labels

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Tuple[paddle.Tensor, paddle.Tensor]]:
        """Batches `start`.. of `epoch`; resuming at batch k skips straight to it."""
        order = self.order(epoch)
        for index in range(start, len(self)):
            images, labels = self.batch_arrays(epoch, index, order)
            yield self.to_tensor(images), self.to_tensor(labels)
