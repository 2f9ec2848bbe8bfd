"""Inference via optimisation and pairwise sample distances (Metz et al. 2017, Section 3.4).

**Inference via optimisation** (Table 3): for each target image x, z* = argmin_z ||G(z) - x||^2,
found with L-BFGS from several random starts (the paper: 3), keeping the best. The error is the
mean squared error per pixel of the best reconstruction. All images are optimised together:
the summed objective is separable, so one L-BFGS run on the stacked z's serves every image.

**Pairwise distances** (Figure 8): L2 distances between random pairs of samples; mode collapse
puts more mass at small distances.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def invert_generator(generator: Callable[[Tensor], Tensor], targets: Tensor, noise_dim: int, starts: int,
                     rng: torch.Generator, max_iterations: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """Best z, its reconstruction and its per-image MSE over `starts` random initialisations.

    The generator's parameters receive no gradient (they are only read); z starts from N(0, I).
    """
    like = dict(dtype=targets.dtype, device=targets.device)
    best_error = torch.full((len(targets),), float("inf"), **like)
    best_z = torch.zeros(len(targets), noise_dim, **like)
    best_reconstruction = torch.zeros_like(targets)
    for _ in range(starts):
        z = torch.randn(len(targets), noise_dim, generator=rng, dtype=targets.dtype).to(targets.device)
        z.requires_grad_(True)
        optimizer = torch.optim.LBFGS([z], max_iter=max_iterations, line_search_fn="strong_wolfe",
                                      tolerance_grad=1e-12, tolerance_change=1e-15)

        def closure() -> Tensor:
            loss = (generator(z) - targets).pow(2).sum()
            # Gradient for z alone: the generator's .grad must stay untouched.
            (z.grad,) = torch.autograd.grad(loss, [z])
            return loss.detach()

        optimizer.step(closure)
        with torch.no_grad():
            reconstruction = generator(z)
            error = (reconstruction - targets).pow(2).flatten(1).mean(dim=1)
            better = error < best_error
            best_error = torch.where(better, error, best_error)
            best_z[better] = z.detach()[better]
            best_reconstruction[better] = reconstruction[better]
    return best_z, best_reconstruction, best_error


def pairwise_distances(samples: Tensor, pairs: int, rng: torch.Generator) -> Tensor:
    """L2 distances between `pairs` random pairs of distinct samples."""
    n = len(samples)
    first = torch.randint(n, (pairs,), generator=rng)
    second = (first + torch.randint(1, n, (pairs,), generator=rng)) % n  # never the same sample
    return (samples[first] - samples[second]).flatten(1).norm(dim=1)
