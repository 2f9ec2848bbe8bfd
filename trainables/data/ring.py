"""Mixture of Gaussians with means equally spaced on a circle (the paper's 2-D task, Section 3.1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def ring_centers(num_modes: int, radius: float) -> Tensor:
    # num_modes distinct angles: the authors' demo used linspace(0, 2*pi, 8), which repeats
    # the first mode at 2*pi and so has only 7 distinct modes.
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return torch.stack([radius * angles.cos(), radius * angles.sin()], dim=1)


def sample_ring(n: int, centers: Tensor, std: float, rng: torch.Generator) -> Tensor:
    """n points: a uniformly chosen centre plus isotropic Gaussian noise of standard deviation std."""
    which = torch.randint(len(centers), (n,), generator=rng)
    return centers[which] + std * torch.randn(n, 2, generator=rng, dtype=centers.dtype)
