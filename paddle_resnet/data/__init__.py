from .cifar import (CIFAR10_CLASSES, MEAN_STD, NUM_CLASSES, Split, class_names, load_cifar,
                    load_split)
from .loader import BatchLoader

__all__ = ["BatchLoader", "CIFAR10_CLASSES", "MEAN_STD", "NUM_CLASSES", "Split",
           "class_names", "load_cifar", "load_split"]
