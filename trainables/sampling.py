"""Drawing samples from a generator for evaluation, without disturbing training state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def batch_statistics(module: nn.Module):
    """Sample with batch-norm batch statistics (as in training) without changing the running averages."""
    buffers = {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}
    was_training = module.training
    module.train()
    try:
        yield
    finally:
        module.load_state_dict(buffers, strict=False)
        module.train(was_training)


@torch.no_grad()
def generate(
    generator: nn.Module,
    noise: Callable[[int, torch.Generator], Tensor],
    n: int,
    rng: torch.Generator,
    batch: int = 512,
) -> Tensor:
    """n samples in batches of `batch` (batch norm sees batches the size it was trained near)."""
    with batch_statistics(generator):
        return torch.cat([generator(noise(min(batch, n - i), rng)) for i in range(0, n, batch)])


@contextlib.contextmanager
def evaluation_mode(module: nn.Module):
    """Batch norm from its running statistics, so that each sample depends on its own z only."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
