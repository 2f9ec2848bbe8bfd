"""Stacked MNIST, 1000 discrete modes: the paper's Table 1 (Section 3.3.1, Appendix E)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..artifacts import LOCAL, Assets
from ..config import check_choice
from ..data.stacked_mnist import StackedMnist, crop_to_digits
from ..errors import ConfigError
from ..metrics.discrete_modes import channel_correlation, discrete_mode_metrics, stacked_labels
from ..mnist_classifier import predict
from ..models.dcgan import DcganDiscriminator, DcganGenerator, scaled_widths
from ..sampling import generate
from ..trainer import GANParts
from . import Experiment, ExperimentRun, Profile, smoke_profile
from ._mnist import LabelledMnistConfig, load_classifier, mnist_for, prepare_mnist_and_classifier

DISCRIMINATOR_SIZES = (0.25, 0.5, 1.0)


@dataclass(frozen=True)
class StackedMnistConfig(LabelledMnistConfig):
    d_size: float = 0.25
    """Discriminator width relative to the generator: conv widths 8X, 16X, 32X [S]; Table 1 uses 1/4 and 1/2."""
    g_base_channels: int = 64
    """[S] G: linear to 4x4x64, transposed convs to 32, 16, 8 channels, conv to 3 (PacGAN's re-implementation)."""
    g_lr: float = 1e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    """[S] Adam settings from PacGAN's re-implementation."""
    iterations: int = 25_000
    """[R] not stated in the paper; about 53 epochs of 60,000 digits at batch 128."""
    report_every: int = 5_000
    snapshot_every: int = 5_000
    eval_samples: int = 25_600
    """[S] generated samples for mode counting (PacGAN's 25,600; VEEGAN used 26,000)."""
    image_size: int = 32
    """32: digits padded to 32x32 with the background value (D 32 -> 16 -> 8 -> 4); 28: MNIST's own size, as PacGAN's
    re-implementation (D 28 -> 14 -> 7 -> 4, G 4 -> 7 -> 14 -> 28) [S]."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("image_size", self.image_size, (28, 32))
        if self.d_size not in DISCRIMINATOR_SIZES:
            raise ConfigError(f"d_size must be one of {', '.join(map(str, DISCRIMINATOR_SIZES))}, got {self.d_size!r}")


def stacked_parts(cfg: StackedMnistConfig, data: StackedMnist, device: torch.device) -> GANParts:
    """The paper's Stacked MNIST networks (PacGAN's re-implementation) and optimizers, training on `data`."""
    generator = DcganGenerator(
        cfg.noise_dim, cfg.g_base_channels, (32, 16, 8), 3, cfg.image_size, cfg.g_first_norm, cfg.weight_init
    )
    discriminator = DcganDiscriminator(
        3, scaled_widths((8, 16, 32), cfg.d_size), cfg.image_size, batchnorm=cfg.d_batchnorm,
        weight_init=cfg.weight_init, batchnorm_first=cfg.d_batchnorm_first,
    )  # fmt: skip
    return GANParts.build(cfg, generator, discriminator, data.sampler(), device)


class StackedMnistRun(ExperimentRun):
    def __init__(self, cfg: StackedMnistConfig, device: torch.device, assets: Assets = LOCAL):
        self.cfg, self.device = cfg, device
        mnist = mnist_for(cfg, assets)
        self.data = StackedMnist(mnist.train_images, mnist.train_labels, device, cfg.image_size)
        self.classifier, self.classifier_accuracy = load_classifier(cfg, device, assets)
        self.parts = stacked_parts(cfg, self.data, device)

    def _generate(self, n: int, rng: torch.Generator) -> Tensor:
        return generate(self.parts.generator, self.parts.sample_noise, n, rng, self.cfg.eval_batch_size)

    def model_samples(self, rng: torch.Generator) -> Tensor:
        return self._generate(self.cfg.snapshot_samples, rng).cpu()

    def data_samples(self, rng: torch.Generator) -> Tensor:
        return self.data.sample(self.cfg.snapshot_samples, rng)[0].cpu()

    def evaluate(self, rng: torch.Generator) -> dict[str, float]:
        generated = self._generate(self.cfg.eval_samples, rng)
        labels = stacked_labels(lambda digits: predict(self.classifier, digits), crop_to_digits(generated))
        return {
            **discrete_mode_metrics(labels, 1000),
            "channel_correlation": channel_correlation(generated),
            "classifier_accuracy": self.classifier_accuracy,
        }


EXPERIMENT = Experiment(
    name="stacked_mnist",
    paper_section="3.3.1",
    config_type=StackedMnistConfig,
    build=StackedMnistRun,
    prepare=prepare_mnist_and_classifier,
    axis_columns=("d_size",),
    gpu_fraction=0.5,
    metrics={
        "modes": "of the 1000 classes (100 r + 10 g + b, channels labelled by the MNIST classifier), "
        "how many have at least one generated sample",
        "kl": "KL(model || data) over the 1000 classes, data uniform: log(1000) - H(q)",
        "channel_correlation": "mean Pearson correlation between a generated image's channels (real data about 0.33; "
        "near 1: one digit repeated in all three, grey images)",
        "classifier_accuracy": "the labelling classifier's accuracy on the real MNIST test split",
    },
    profiles={
        "smoke": smoke_profile(
            6, 3, axes={"d_size": (0.25,)}, batch_size=16, eval_samples=200, snapshot_samples=8, classifier="quick"
        ),
        "quick": Profile(
            "this 2-core machine: 3,000 iterations, 5,000 evaluation samples (not 25,600), D = 1/4 G only",
            dict(iterations=3_000, report_every=1_000, snapshot_every=1_000, eval_samples=5_000),
            seeds=(0, 1, 2, 3, 4),
            unroll_steps=(0, 5),
            axes={"d_size": (0.25,)},
        ),
        "paper": Profile(
            "Table 1: 5 seeds x unroll {0, 1, 5, 10} x D size {1/4, 1/2}, for a GPU cluster",
            dict(),
            seeds=(0, 1, 2, 3, 4),
            unroll_steps=(0, 1, 5, 10),
            axes={"d_size": (0.25, 0.5)},
        ),
    },
)
