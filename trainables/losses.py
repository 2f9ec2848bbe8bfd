"""GAN losses on discriminator logits (Goodfellow et al. 2014, as used by Metz et al. 2017).

Written with softplus so that log D = -softplus(-logit) and log(1 - D) = -softplus(logit)
stay finite for saturated discriminators.

A generator loss is a function of the discriminator *at the parameters it is evaluated at*
(theta_D^K for the unrolled surrogate) and of the minibatch, not of precomputed fake logits:
the minimax objective f needs the real batch's logits at theta_D^K too, and only it does, so
the losses that need no real logits never pay for that forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Discriminator = Callable[[Tensor], Tensor]
"""x -> logits, the discriminator at fixed parameters."""
Reduce = Callable[[Tensor], Tensor]
"""How E[.] is taken over a batch: the mean (one model), or one mean per seed (seeds packed, ``packed``)."""


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, reduce: Reduce = torch.mean) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))]: what the discriminator minimises, i.e. -f."""
    return reduce(F.softplus(-real_logits)) + reduce(F.softplus(fake_logits))


def generator_loss_minimax(
    discriminator: Discriminator, real: Tensor, fake: Tensor, reduce: Reduce = torch.mean
) -> Tensor:
    """f = E[log D(x)] + E[log(1 - D(G(z)))], the paper's minimax objective (its 2-D experiment).

    Both terms are kept: at theta_D^K with K >= 1 the real term depends on the generator
    through the unrolled steps (Metz et al. 2017, Section 2: f_K = f(theta_G, theta_D^K)).
    """
    return -discriminator_loss(discriminator(real), discriminator(fake), reduce)


def generator_loss_non_saturating(
    discriminator: Discriminator, real: Tensor, fake: Tensor, reduce: Reduce = torch.mean
) -> Tensor:
    """-E[log D(G(z))]: the non-saturating loss (the paper's MNIST and image experiments)."""
    del real  # the non-saturating loss has no real-data term
    return reduce(F.softplus(-discriminator(fake)))


GENERATOR_LOSSES = {"minimax": generator_loss_minimax, "non_saturating": generator_loss_non_saturating}
