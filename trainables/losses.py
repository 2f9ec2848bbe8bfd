"""GAN losses on discriminator logits (Goodfellow et al. 2014, as used by Metz et al. 2017).

Written with softplus so that log D = -softplus(-logit) and log(1 - D) = -softplus(logit)
stay finite for saturated discriminators.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))]: what the discriminator minimises."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_minimax(fake_logits: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))]: the minimax generator loss (paper's 2-D experiment)."""
    return -F.softplus(fake_logits).mean()


def generator_loss_non_saturating(fake_logits: Tensor) -> Tensor:
    """-E[log D(G(z))]: the non-saturating loss (paper's MNIST and image experiments)."""
    return F.softplus(-fake_logits).mean()


GENERATOR_LOSSES = {"minimax": generator_loss_minimax, "non_saturating": generator_loss_non_saturating}
