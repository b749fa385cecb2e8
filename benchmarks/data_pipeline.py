"""Data pipeline throughput: the Paddle notebook's per-image PIL pipeline vs this package's
whole-batch augmentation (compiled host kernels, and Paddle operators on the device, which
here is the CPU), for both recipes. Variants run interleaved, each timed
over the same number of batches; the table shows medians over repeats and the ratio to
the notebook's pipeline measured in the same run.

    python benchmarks/data_pipeline.py --data-file cifar-10-python.tar.gz [--batches 20]
"""
import argparse
import gc
import os
import statistics
import sys
import time

from results_file import add_json_argument, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.vision.transforms as T  # noqa: E402

from paddle_resnet.runtime import prepare_process  # noqa: E402

prepare_process()  # MKL's fast path on AMD, before Paddle computes
from paddle_resnet.data import MEAN_STD, BatchLoader, load_split  # noqa: E402
from paddle_resnet.data.augment import NOTEBOOK_JITTER  # noqa: E402

BATCH = 128


class PerImage(paddle.io.Dataset):
    """What the notebook does: PIL images through paddle.vision.transforms one by one."""

    def __init__(self, split, transform):
        self.split, self.transform = split, transform

    def __len__(self):
        return len(self.split)

    def __getitem__(self, index):
        from PIL import Image
        return (self.transform(Image.fromarray(self.split.images[index])),
                np.int64(self.split.labels[index]))


def per_image_loader(split, recipe, workers):
    mean, std = MEAN_STD["cifar10"]
    augment = ([T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
                T.ColorJitter(**NOTEBOOK_JITTER)] if recipe == "notebook" else
               [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
    transform = T.Compose(augment + [T.ToTensor(), T.Normalize(mean, std)])
    return paddle.io.DataLoader(PerImage(split, transform), batch_size=BATCH, shuffle=True,
                                drop_last=True, num_workers=workers)


def time_batches(make_iterator, batches):
    iterator = make_iterator()
    next(iterator)  # worker start-up and first-batch costs are not throughput
    start = time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
    assert images.shape == [BATCH, 3, 32, 32]
    rate = BATCH * batches / (time.perf_counter() - start)
    # DataLoader workers keep prefetching until shut down; left alive they would steal
    # the CPU from the next variant.
    shutdown = getattr(iterator, "_try_shutdown_all", None)
    if shutdown is not None:
        shutdown()
    del iterator
    gc.collect()
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-file", required=True)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_argument(parser)
    args = parser.parse_args()
    split = load_split("cifar10", "train", args.data_file)
    mean, std = MEAN_STD["cifar10"]
    variants = {}
    for recipe in ("notebook", "standard"):
        for workers in (0, 2):
            variants[f"{recipe}: per-image PIL, DataLoader workers={workers}"] = (
                lambda r=recipe, w=workers: iter(per_image_loader(split, r, w)))
        for augment_on in ("host", "device"):
            loader = BatchLoader(split, BATCH, mean, std, augment=recipe, shuffle=True,
                                 drop_last=True, seed=0, augment_on=augment_on)
            variants[f"{recipe}: paddle_resnet whole-batch, data.augment_on={augment_on}"] = (
                lambda loader=loader: loader.epoch(0))
    results = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, make in variants.items():  # interleaved: drift hits every variant alike
            results[name].append(time_batches(make, args.batches))
    rows = []
    print(f"| pipeline (batch {BATCH}, {args.batches} batches x {args.repeats} repeats) | "
          "images/s (median) | vs notebook pipeline |")
    print("|---|---:|---:|")
    for recipe in ("notebook", "standard"):
        baseline = statistics.median(results[f"{recipe}: per-image PIL, DataLoader workers=2"])
        for name, values in results.items():
            if name.startswith(recipe):
                median = statistics.median(values)
                rows.append({"variant": name, "images_per_s": median, "runs": values,
                             "ratio": median / baseline})
                print(f"| {name} | {median:,.0f} | {median / baseline:.1f}x |")
    write_json(args.json, {"cpu_count": os.cpu_count(), "paddle": paddle.__version__,
                           "rows": rows})


if __name__ == "__main__":
    main()
