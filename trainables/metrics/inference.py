"""Inference via optimisation and pairwise sample distances (Metz et al. 2017, Section 3.4).

**Inference via optimisation** (Table 3): for each target image x, z* = argmin_z ||G(z) - x||^2,
found with L-BFGS from several random starts (the paper: 3), keeping the best. The error is the
mean squared error per pixel of the best reconstruction. Each image is optimised on its own:
the images are stacked into one batch for speed, but every image has its own L-BFGS curvature
memory, step size and line search, so a batch gives each image exactly what a run on that image
alone gives (one shared L-BFGS over the summed objective would not: its line search and memory
would mix the images). The generator must be in eval mode, so that no image's output depends on
another's (batch norm with batch statistics would couple them).

**Pairwise distances** (Figure 8): L2 distances between random pairs of samples; mode collapse
puts more mass at small distances.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Objective = Callable[[Tensor], Tensor]
"""[B, d] -> [B]: each row's own loss, depending on that row alone."""


def _loss_and_grad(objective: Objective, x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        losses = objective(x)
        # Rows are independent, so the gradient of the sum is each row's own gradient.
        (grad,) = torch.autograd.grad(losses.sum(), [x])
    return losses.detach(), grad


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=1)


def batched_lbfgs(
    objective: Objective,
    x0: Tensor,
    max_iterations: int = 100,
    history: int = 10,
    tolerance_grad: float = 1e-7,
    armijo: float = 1e-4,
    max_halvings: int = 30,
) -> Tensor:
    """Minimise every row's loss independently with L-BFGS (two-loop recursion, backtracking line search).

    Every quantity that L-BFGS keeps per problem (the (s, y) history and its curvature scale, the
    step length, the Armijo test, convergence) is kept per row, so row i's result does not depend
    on any other row. Rows whose gradient falls below ``tolerance_grad`` (max-norm) stop moving.
    """
    x = x0.detach().clone()
    loss, grad = _loss_and_grad(objective, x)
    steps: list[Tensor] = []
    changes: list[Tensor] = []
    inverse_curvatures: list[Tensor] = []  # rho = 1 / (y . s); 0 drops a pair for that row
    for _ in range(max_iterations):
        active = grad.abs().amax(dim=1) > tolerance_grad
        if not active.any():
            break
        # Two-loop recursion, with each row's own history.
        q = grad.clone()
        alphas = []
        for s, y, rho in zip(reversed(steps), reversed(changes), reversed(inverse_curvatures)):
            alpha = rho * _dot(s, q)
            q -= alpha[:, None] * y
            alphas.append(alpha)
        if steps:
            s, y, rho = steps[-1], changes[-1], inverse_curvatures[-1]
            yy = _dot(y, y)
            gamma = torch.where((rho > 0) & (yy > 0), _dot(s, y) / yy.clamp_min(1e-300), torch.ones_like(yy))
        else:  # first step: a unit-length move, as torch.optim.LBFGS takes
            gamma = 1 / grad.abs().sum(dim=1).clamp_min(1.0)
        r = gamma[:, None] * q
        for s, y, rho, alpha in zip(steps, changes, inverse_curvatures, reversed(alphas)):
            beta = rho * _dot(y, r)
            r += (alpha - beta)[:, None] * s
        direction = -r
        slope = _dot(grad, direction)
        not_descent = slope >= 0
        direction[not_descent] = -grad[not_descent]
        slope = torch.where(not_descent, -_dot(grad, grad), slope)

        # Backtracking line search, one step length per row; rows are tried together.
        t = torch.ones_like(loss)
        accepted = ~active
        new_x = x.clone()
        for _ in range(max_halvings):
            trial = x + t[:, None] * direction
            with torch.no_grad():
                trial_loss = objective(trial)
            ok = ~accepted & (trial_loss <= loss + armijo * t * slope)
            new_x[ok] = trial[ok]
            accepted |= ok
            if accepted.all():
                break
            t = torch.where(accepted, t, t / 2)
        moved = accepted & active & (t > 0)
        moved &= (new_x != x).any(dim=1)
        new_loss, new_grad = _loss_and_grad(objective, new_x)
        s, y = new_x - x, new_grad - grad
        sy = _dot(s, y)
        keep = moved & (sy > 1e-10)
        steps.append(torch.where(keep[:, None], s, torch.zeros_like(s)))
        changes.append(torch.where(keep[:, None], y, torch.zeros_like(y)))
        inverse_curvatures.append(torch.where(keep, 1 / sy.clamp_min(1e-300), torch.zeros_like(sy)))
        if len(steps) > history:
            steps.pop(0), changes.pop(0), inverse_curvatures.pop(0)
        x = torch.where(moved[:, None], new_x, x)
        loss = torch.where(moved, new_loss, loss)
        grad = torch.where(moved[:, None], new_grad, grad)
        if not moved.any():
            break
    return x


def invert_generator(
    generator: Callable[[Tensor], Tensor],
    targets: Tensor,
    noise_dim: int,
    starts: int,
    rng: torch.Generator,
    max_iterations: int = 100,
) -> tuple[Tensor, Tensor, Tensor]:
    """Best z, its reconstruction and its per-image MSE over `starts` random initialisations.

    The generator's parameters receive no gradient (they are only read); z starts from N(0, I).
    """
    like = dict(dtype=targets.dtype, device=targets.device)
    best_error = torch.full((len(targets),), float("inf"), **like)
    best_z = torch.zeros(len(targets), noise_dim, **like)
    best_reconstruction = torch.zeros_like(targets)

    def squared_error(z: Tensor) -> Tensor:
        return (generator(z) - targets).pow(2).flatten(1).sum(dim=1)

    for _ in range(starts):
        z0 = torch.randn(len(targets), noise_dim, generator=rng, dtype=targets.dtype).to(targets.device)
        z = batched_lbfgs(squared_error, z0, max_iterations=max_iterations)
        with torch.no_grad():
            reconstruction = generator(z)
            error = (reconstruction - targets).pow(2).flatten(1).mean(dim=1)
            better = error < best_error
            best_error = torch.where(better, error, best_error)
            best_z[better] = z[better]
            best_reconstruction[better] = reconstruction[better]
    return best_z, best_reconstruction, best_error


def pairwise_distances(samples: Tensor, pairs: int, rng: torch.Generator) -> Tensor:
    """L2 distances between `pairs` random pairs of distinct samples."""
    n = len(samples)
    first = torch.randint(n, (pairs,), generator=rng)
    second = (first + torch.randint(1, n, (pairs,), generator=rng)) % n  # never the same sample
    return (samples[first] - samples[second]).flatten(1).norm(dim=1)
