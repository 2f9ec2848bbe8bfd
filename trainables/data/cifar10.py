"""CIFAR-10 from the standard python batches (`cifar-10-batches-py/`), which every mirror ships.

Each of `data_batch_1` ... `data_batch_5` and `test_batch` is a pickled dict whose b"data" is a
uint8 array [10000, 3072] (the 1024 red, then green, then blue values of each 32x32 image, row
by row) and whose b"labels" is a list of 10000 class indices.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..errors import DatasetError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def load_cifar10(directory: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, 3, 32, 32] and int64 labels [n] of the train (50,000) or test (10,000) split."""
    root = Path(directory)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise DatasetError(f"CIFAR-10 folder not found: {directory}")
    names = TRAIN_BATCHES if split == "train" else ("test_batch",)
    images, labels = [], []
    for name in names:
        x, y = read_batch(root / name)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"missing CIFAR-10 file: {path}")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise DatasetError(f"malformed CIFAR-10 batch {path}: {type(error).__name__}: {error}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DatasetError(
            f"malformed CIFAR-10 batch {path}: data {data.shape}, {len(labels)} labels; expected [n, 3072] and n labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"malformed CIFAR-10 batch {path}: labels outside 0-9")
    return data.reshape(-1, 3, 32, 32), labels
