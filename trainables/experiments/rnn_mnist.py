"""An LSTM generator on MNIST: the paper's Figure 2 (Section 3.2, Appendix C)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..artifacts import LOCAL, Assets
from ..draws import Sampler, draw_indices
from ..errors import ConfigError
from ..metrics.histograms import kl_to_uniform
from ..mnist_classifier import predict
from ..models.dcgan import DcganDiscriminator
from ..models.lstm import LstmGenerator
from ..sampling import generate
from ..trainer import GANParts
from . import Experiment, ExperimentRun, Profile, smoke_profile
from ._mnist import LabelledMnistConfig, load_classifier, mnist_for, prepare_mnist_and_classifier


@dataclass(frozen=True)
class RnnMnistConfig(LabelledMnistConfig):
    hidden: int = 256
    """[R] LSTM units (and the width of the FC layer that sets its initial state)."""
    beta1: float = 0.5
    """[R] Adam (both networks lr 1e-4, the GANConfig default)."""
    batch_size: int = 64
    """[R] not readable in the paper."""
    iterations: int = 20_000
    """[R] not stated in the paper."""
    report_every: int = 2_000
    snapshot_every: int = 2_000
    eval_samples: int = 2_000
    """Generated digits labelled by the MNIST classifier for the collapse signal."""
    snapshot_samples: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden < 1:
            raise ConfigError(f"hidden must be positive, got {self.hidden}")
        self.refuse_changed(("g_first_norm",), "the LSTM generator has no DCGAN first batch norm to configure")


def label_metrics(labels: Tensor) -> dict[str, float]:
    """The classifier's label distribution over generated digits: per-digit shares, entropy, largest share."""
    counts = torch.bincount(labels.long(), minlength=10).double()
    shares = counts / counts.sum()
    kl = kl_to_uniform(counts)
    return {
        "label_entropy": math.log(10) - kl,
        "label_kl_uniform": kl,
        "top_label_pct": 100 * shares.max().item(),
        **{f"label_{d}_pct": 100 * shares[d].item() for d in range(10)},
    }


class RnnMnistRun(ExperimentRun):
    def __init__(self, cfg: RnnMnistConfig, device: torch.device, assets: Assets = LOCAL):
        self.cfg, self.device = cfg, device
        mnist = mnist_for(cfg, assets)
        self.images = torch.as_tensor(mnist.train_images).to(device)
        self.classifier, self.classifier_accuracy = load_classifier(cfg, device, assets)
        generator = LstmGenerator(cfg.noise_dim, cfg.hidden)
        discriminator = DcganDiscriminator(
            1,
            (16, 32, 32),
            image_size=28,
            batchnorm=cfg.d_batchnorm,
            weight_init=cfg.weight_init,
            batchnorm_first=cfg.d_batchnorm_first,
        )
        real = Sampler(draw_indices(len(self.images)), device, self._gather)
        self.parts = GANParts.build(cfg, generator, discriminator, real, device)

    def _gather(self, which: Tensor) -> Tensor:
        return (self.images[which].float() / 127.5 - 1).unsqueeze(1)

    def _real(self, n: int, rng: torch.Generator) -> Tensor:
        return self.parts.sample_real(n, rng)

    def model_samples(self, rng: torch.Generator) -> Tensor:
        return generate(
            self.parts.generator, self.parts.sample_noise, self.cfg.snapshot_samples, rng, self.cfg.eval_batch_size
        ).cpu()

    def data_samples(self, rng: torch.Generator) -> Tensor:
        return self._real(self.cfg.snapshot_samples, rng).cpu()

    def evaluate(self, rng: torch.Generator) -> dict[str, float]:
        samples = generate(
            self.parts.generator, self.parts.sample_noise, self.cfg.eval_samples, rng, self.cfg.eval_batch_size
        )
        labels = predict(self.classifier, ((samples + 1) / 2).clamp(0, 1))
        return {**label_metrics(labels), "classifier_accuracy": self.classifier_accuracy}


EXPERIMENT = Experiment(
    name="rnn_mnist",
    paper_section="3.2",
    config_type=RnnMnistConfig,
    build=RnnMnistRun,
    prepare=prepare_mnist_and_classifier,
    gpu_fraction=0.25,
    metrics={
        "label_entropy": "entropy (nats, max log 10) of the classifier's labels on generated digits",
        "label_kl_uniform": "KL(label distribution || uniform over 10 digits)",
        "top_label_pct": "share of generated digits given the most common label (collapse pushes it to 100)",
        **{f"label_{d}_pct": f"share of generated digits labelled {d}" for d in range(10)},
        "classifier_accuracy": "the labelling classifier's accuracy on the real MNIST test split",
    },
    profiles={
        "smoke": smoke_profile(4, 2, batch_size=8, eval_samples=32, snapshot_samples=4, hidden=16, classifier="quick"),
        "quick": Profile(
            "this 2-core machine",
            dict(iterations=2_000, report_every=500, snapshot_every=500),
            seeds=(0, 1),
            unroll_steps=(0, 10),
        ),
        "paper": Profile(
            "Figure 2: 0 vs 20 unroll steps, 5 seeds, for a GPU cluster",
            dict(),
            seeds=(0, 1, 2, 3, 4),
            unroll_steps=(0, 20),
        ),
    },
)
