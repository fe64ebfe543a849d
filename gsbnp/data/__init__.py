"""Datasets for gsbnp: the ``.npz`` format, its validating loader and the bundled digits.

``load_dataset(path)`` reads any file that ``data_scripts`` (or ``gsbnp data prepare``) wrote;
``load_digits()`` returns the bundled 8x8 handwritten digits used by ``gsbnp train`` out of the box.
The download/convert code for CIFAR-100, Oxford-Flowers102 and Chaoyang lives in
``gsbnp.data.prepare`` and is imported only when used.

Legend: N train images, M test images, H x W image size, C colour channels, K classes.
"""

from gsbnp.data.dataset import (
    Dataset,
    bundled_digits_path,
    channel_stats,
    load_dataset,
    load_digits,
    save_dataset,
    subset_train,
)

__all__ = ["Dataset", "bundled_digits_path", "channel_stats", "load_dataset", "load_digits",
           "save_dataset", "subset_train"]
