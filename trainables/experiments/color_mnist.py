"""Color MNIST, continuous mode collapse: the paper's Table 2 (Section 3.3.2, Appendix F)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..artifacts import LOCAL, Assets
from ..data.color_mnist import ColorMnist
from ..errors import ConfigError
from ..metrics.colours import kde_js_divergence, recover_colours
from ..models.dcgan import DcganDiscriminator, DcganGenerator, scaled_widths
from ..sampling import generate
from ..trainer import GANParts
from . import Experiment, ExperimentRun, Profile, smoke_profile
from ._mnist import MnistGANConfig, mnist_for, prepare_mnist


@dataclass(frozen=True)
class ColorMnistConfig(MnistGANConfig):
    layer_size: float = 1.0
    """X: G linear to 4x4x64X, transposed convs 32X, 16X, 8X; D convs 8X, 16X, 32X [R]. Table 2: 1/4, 1/2, 1."""
    colour_std: float = 0.5
    """[R] each RGB channel of a digit's colour ~ N(0, colour_std^2)."""
    noise_std: float = 0.2
    """[R] per-pixel noise N(0, noise_std^2)."""
    beta1: float = 0.5
    """[R] not readable in the paper: Adam with both learning rates 1e-4 (the GANConfig default)."""
    iterations: int = 20_000
    """[R] not stated in the paper."""
    report_every: int = 2_000
    snapshot_every: int = 10_000
    eval_samples: int = 2_000
    """[R] generated (and data) images whose colours are recovered for the JS estimate."""
    js_points: int = 10_000
    """[R] Monte Carlo draws from each KDE for the JS estimate."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.layer_size > 0:
            raise ConfigError(f"layer_size (X) must be positive, got {self.layer_size!r}")
        if not 0 < self.colour_std <= 2:
            raise ConfigError(f"colour_std must be in (0, 2], got {self.colour_std!r}")
        if not 0 <= self.noise_std < 1:
            raise ConfigError(f"noise_std must be in [0, 1), got {self.noise_std!r}")


class ColorMnistRun(ExperimentRun):
    def __init__(self, cfg: ColorMnistConfig, device: torch.device, assets: Assets = LOCAL):
        self.cfg, self.device = cfg, device
        self.data = ColorMnist(mnist_for(cfg, assets).train_images, device, cfg.colour_std, cfg.noise_std)
        x = cfg.layer_size
        generator = DcganGenerator(
            cfg.noise_dim,
            max(1, round(64 * x)),
            scaled_widths((32, 16, 8), x),
            3,
            32,
            cfg.g_first_norm,
            cfg.weight_init,
        )
        discriminator = DcganDiscriminator(
            3,
            scaled_widths((8, 16, 32), x),
            batchnorm=cfg.d_batchnorm,
            weight_init=cfg.weight_init,
            batchnorm_first=cfg.d_batchnorm_first,
        )
        self.parts = GANParts.build(cfg, generator, discriminator, self.data.sampler(), device)

    def model_samples(self, rng: torch.Generator) -> Tensor:
        return generate(
            self.parts.generator, self.parts.sample_noise, self.cfg.snapshot_samples, rng, self.cfg.eval_batch_size
        ).cpu()

    def data_samples(self, rng: torch.Generator) -> Tensor:
        return self.data.sample(self.cfg.snapshot_samples, rng)[0].cpu()

    def describe(self, kind: str, samples: Tensor) -> dict[str, Tensor]:
        """Each snapshot's recovered digit colours ('model_colour', 'data_colour'), for the report's scatter."""
        return {f"{kind}_colour": recover_colours(samples)}

    def evaluate(self, rng: torch.Generator) -> dict[str, float]:
        model = recover_colours(
            generate(
                self.parts.generator, self.parts.sample_noise, self.cfg.eval_samples, rng, self.cfg.eval_batch_size
            ).cpu()
        )
        data = recover_colours(self.data.sample(self.cfg.eval_samples, rng)[0].cpu())
        return {
            "js": kde_js_divergence(data, model, self.cfg.js_points, rng),
            "colour_spread": model.std(dim=0).mean().item(),
            "data_colour_spread": data.std(dim=0).mean().item(),
        }


EXPERIMENT = Experiment(
    name="color_mnist",
    paper_section="3.3.2",
    config_type=ColorMnistConfig,
    build=ColorMnistRun,
    prepare=prepare_mnist,
    axis_columns=("layer_size",),
    gpu_fraction=0.25,
    metrics={
        "js": "JS divergence (nats) between KDEs of recovered digit colours, data vs model (metrics/colours.py)",
        "colour_spread": "mean per-channel std of the model's recovered colours (collapse shrinks it)",
        "data_colour_spread": "the same for data images",
    },
    profiles={
        "smoke": smoke_profile(
            4, 2, axes={"layer_size": (0.25,)}, batch_size=16, eval_samples=64, js_points=256, snapshot_samples=8
        ),
        # The paper's D batch norm (every layer but the input one, the fixed default): with it K = 0 learns
        # more of the colours than without it (JS 0.525 against 0.612, 5 seeds each; docs/results.md).
        "quick": Profile(
            "this 2-core machine: X = 1/2 only, 3,000 iterations",
            dict(iterations=3_000, report_every=500, snapshot_every=1_000),
            seeds=(0, 1, 2, 3, 4),
            unroll_steps=(0, 5),
            axes={"layer_size": (0.5,)},
        ),
        "paper": Profile(
            "Table 2: 5 seeds x unroll {0, 1, 5, 10} x X {1/4, 1/2, 1}, for a GPU cluster",
            dict(),
            seeds=(0, 1, 2, 3, 4),
            unroll_steps=(0, 1, 5, 10),
            axes={"layer_size": (0.25, 0.5, 1.0)},
        ),
    },
)
