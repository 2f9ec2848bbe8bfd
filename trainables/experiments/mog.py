"""Mixture of 8 Gaussians on a ring: the paper's Figure 1 (Section 3.1, Appendix A)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..artifacts import LOCAL, Assets
from ..config import GANConfig, check_choice
from ..data.ring import grid_centers, ring_centers, sample_ring
from ..draws import Sampler
from ..errors import ConfigError
from ..metrics.modes import mode_metrics
from ..models.mlp import ScaledInput, mlp
from ..trainer import GANParts
from . import Experiment, ExperimentRun, Profile, smoke_profile

LAYOUTS = ("ring", "grid")


@dataclass(frozen=True)
class MogConfig(GANConfig):
    layout: str = "ring"
    """'ring' (the paper's: num_modes means on a circle of `radius`) or 'grid' (num_modes, a perfect
    square, on a square grid `radius` apart: 25 and 2.0 give VEEGAN's and PacGAN's {-4,...,4}^2)."""
    num_modes: int = 8
    radius: float = 2.0
    """[R] ring radius (the appendix's value is not readable; the demo and PacGAN used 1.0), or the
    grid's spacing."""
    std: float = 0.02
    """[R] standard deviation of each mode."""
    hidden: int = 128
    """[R] width of G's two hidden layers and D's one."""
    init_gain: float = 0.8
    """[R] orthogonal initialisation scale."""
    d_input_scale: float = 4.0
    """[R] D sees x / d_input_scale, about (-1, 1): twice `radius` on every layout, so D sees PacGAN's
    ring (radius 1) exactly as it sees the paper's (radius 2, the same ring halved)."""
    g_lr: float = 1e-4
    """[R] G's Adam step. The `quick` profiles use 1e-3, as the authors' demo notebook does: it starts faster, but
    by 10,000 iterations 1e-4 caught up (measured: docs/results.md, "The 2-D benchmarks at paper length"), so
    the default stays."""
    d_lr: float = 1e-4
    beta1: float = 0.5
    """[R] Adam for both networks."""
    generator_loss: str = "minimax"
    """[P] the 2-D experiment trains G on the minimax loss itself."""
    eval_samples: int = 2_500
    """Samples for the mode metrics (VEEGAN's and PacGAN's count)."""
    batch_size: int = 512
    """[S] the authors' demo notebook."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_modes < 1 or self.std <= 0 or self.radius <= 0:
            raise ConfigError("num_modes, radius and std must be positive")
        check_choice("layout", self.layout, LAYOUTS)
        if self.layout == "grid" and math.isqrt(self.num_modes) ** 2 != self.num_modes:
            raise ConfigError(f"a grid layout needs a square number of modes, got num_modes={self.num_modes}")


class MogRun(ExperimentRun):
    def __init__(self, cfg: MogConfig, device: torch.device, assets: Assets = LOCAL):
        self.cfg, self.device = cfg, device
        layout = ring_centers if cfg.layout == "ring" else grid_centers
        self.centers = layout(cfg.num_modes, cfg.radius)
        self.parts = GANParts.build(
            cfg,
            generator=mlp([cfg.noise_dim, cfg.hidden, cfg.hidden, 2], cfg.init_gain),
            discriminator=ScaledInput(mlp([2, cfg.hidden, 1], cfg.init_gain), cfg.d_input_scale),
            sample_real=Sampler(self._draw_real, device),
            device=device,
        )

    def _draw_real(self, n: int, rng: torch.Generator) -> Tensor:
        return sample_ring(n, self.centers, self.cfg.std, rng).float()

    def _real(self, n: int, rng: torch.Generator) -> Tensor:
        return self.parts.sample_real(n, rng)

    @torch.no_grad()
    def model_samples(self, rng: torch.Generator) -> Tensor:
        return self.parts.generator(self.parts.sample_noise(self.cfg.eval_samples, rng)).cpu()

    def data_samples(self, rng: torch.Generator) -> Tensor:
        return self._real(self.cfg.eval_samples, rng).cpu()

    def evaluate(self, rng: torch.Generator) -> dict[str, float]:
        return mode_metrics(self.model_samples(rng), self.centers, self.cfg.std)


PAPER_RING_PROFILES = {
    "smoke": smoke_profile(40, 20, (0, 2), batch_size=64, eval_samples=256),
    # 5 seeds, so the exact rank test can reach p = 0.008; 7,000 iterations at G's faster learning
    # rate (see `g_lr`) is where K = 10 has all 8 modes and rising quality in every seed while the
    # grid still fits a few minutes on 2 cores (measured: docs/results.md).
    "quick": Profile(
        "this 2-core machine (docs/results.md gives its measured time); 5 seeds x K in {0, 10}, 7,000 iterations",
        dict(iterations=7_000, report_every=500, snapshot_every=1_000, g_lr=1e-3),
        seeds=(0, 1, 2, 3, 4),
        unroll_steps=(0, 10),
    ),
    "paper": Profile(
        "the paper's schedule (25k iterations), 5 seeds",
        dict(iterations=25_000),
        seeds=(0, 1, 2, 3, 4),
        unroll_steps=(0, 1, 5, 10),
    ),
}
# The benchmarks later papers run Unrolled GAN on (VEEGAN, NIPS 2017; PacGAN, NeurIPS 2018), at
# VEEGAN's K = 5 beside K = 0; PacGAN averages 10 trials (--seeds 0 1 2 3 4 5 6 7 8 9).
OTHER_LAYOUTS = {
    "pacgan-ring": ("PacGAN's ring: radius 1, std 0.01", dict(radius=1.0, std=0.01, d_input_scale=2.0)),
    "grid": ("the 25-mode grid at {-4,-2,0,2,4}^2, std 0.05", dict(layout="grid", num_modes=25, std=0.05)),
}
PROFILES = {
    **PAPER_RING_PROFILES,
    **{
        f"{layout}-{name}": Profile(
            f"{description}; {profile.description}",
            {**values, **profile.values},
            seeds=profile.seeds,
            unroll_steps=(0, 5) if name != "smoke" else profile.unroll_steps,
        )  # fmt: skip
        for layout, (description, values) in OTHER_LAYOUTS.items()
        for name, profile in PAPER_RING_PROFILES.items()
    },
}

# The paper's Appendix B ablations, one sweep per study, each on the paper's ring at quick length
# and 5 seeds; `python -m analysis report` gives each its table against the paper's finding.
# N, S and the studies' K are [R]: the paper prints none of them.
ABLATION_LENGTH = dict(iterations=5_000, report_every=500, snapshot_every=2_500)
ABLATION_SEEDS = (0, 1, 2, 3, 4)
ABLATION_PROFILES = {
    # (a) historical averaging: G against the mean loss of the last N discriminators, one taken
    # every S iterations (S = 1: the last N; larger S: older ones). (1, 1) is the plain GAN.
    "ablation-history": Profile(
        "Appendix B (a): D ensembles of the last N, taken every S iterations, against the plain GAN",
        ABLATION_LENGTH,
        seeds=ABLATION_SEEDS,
        unroll_steps=(0,),
        variants=tuple(
            dict(d_ensemble_size=n, d_ensemble_every=every) for n, every in ((1, 1), (10, 1), (10, 10), (10, 100))
        ),
    ),
    # (b) the second gradient: full unroll, stop-gradient, stop-gradient averaged over the K steps.
    "ablation-second-gradient": Profile(
        "Appendix B (b): full unroll vs stop-gradient vs stop-gradient averaged over the K unrolled Ds",
        ABLATION_LENGTH,
        seeds=ABLATION_SEEDS,
        unroll_steps=(5,),
        variants=(
            dict(second_order=True, average_over_unroll=False),
            dict(second_order=False, average_over_unroll=False),
            dict(second_order=False, average_over_unroll=True),
        ),
    ),
    # (c) five G steps per D step, with and without the second gradient, at a small and a larger K.
    "ablation-generator-steps": Profile(
        "Appendix B (c): 5 G steps per D step, with and without the second gradient",
        # 3,000 iterations: each is five unrolled G steps, 3-4x the cost of one (python -m bench.unroll_cost).
        dict(iterations=3_000, report_every=500, snapshot_every=1_500, generator_steps=5),
        seeds=ABLATION_SEEDS,
        unroll_steps=(1, 5),
        variants=(dict(second_order=True), dict(second_order=False)),
    ),
}
PROFILES.update(ABLATION_PROFILES)

EXPERIMENT = Experiment(
    name="mog",
    paper_section="3.1",
    config_type=MogConfig,
    build=MogRun,
    metrics={
        "modes": "modes (of num_modes) nearest to at least one high-quality sample (VEEGAN/PacGAN)",
        "high_quality_pct": "% of samples within 3 std of their nearest mode centre (VEEGAN/PacGAN)",
        "reverse_kl": "KL(histogram of high-quality samples over modes || uniform) (PacGAN); NaN if none",
    },
    profiles=PROFILES,
)
