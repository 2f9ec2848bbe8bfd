"""Mixtures of Gaussians in the plane: means equally spaced on a circle (the paper's 2-D task,
Section 3.1) or on a square grid (the 25-mode benchmark of VEEGAN and PacGAN)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def ring_centers(num_modes: int, radius: float) -> Tensor:
    # num_modes distinct angles: the authors' demo used linspace(0, 2*pi, 8), which repeats
    # the first mode at 2*pi and so has only 7 distinct modes.
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return torch.stack([radius * angles.cos(), radius * angles.sin()], dim=1)


def grid_centers(num_modes: int, spacing: float) -> Tensor:
    """A square grid of num_modes (a perfect square) centres, `spacing` apart, centred on the origin:
    25 modes 2 apart are VEEGAN's and PacGAN's grid at {-4, -2, 0, 2, 4}^2."""
    side = math.isqrt(num_modes)
    coordinates = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(coordinates, coordinates, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def sample_ring(n: int, centers: Tensor, std: float, rng: torch.Generator) -> Tensor:
    """n points: a uniformly chosen centre plus isotropic Gaussian noise of standard deviation std."""
    which = torch.randint(len(centers), (n,), generator=rng)
    return centers[which] + std * torch.randn(n, 2, generator=rng, dtype=centers.dtype)
