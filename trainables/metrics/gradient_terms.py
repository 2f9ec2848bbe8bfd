"""The two terms of the unrolled generator's gradient (Metz et al. 2017, Section 2), on one probe minibatch.

    df_K/dtheta_G = df/dtheta_G (at theta_D^K)  +  df/dtheta_D^K . dtheta_D^K/dtheta_G
                    (first term)                   (second term: through the K unrolled steps)

A second term pointing against the first (cosine near -1) with a similar norm cancels the generator's gradient:
how the full unroll lost to K = 0 on the MNIST experiments here (docs/results.md). Measuring leaves training
untouched: no parameter, optimizer state, random stream or batch-norm statistic changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..trainer import GANParts
from ..unrolled import unrolled_generator_loss

PROBE_SEED = 12_345
"""Seeds the probe minibatch, apart from the training run's own random stream."""

METRICS = {
    "grad_first_norm": "with gradient_probe: norm of the generator gradient's first term (at theta_D^K) on a "
    "fixed probe minibatch",
    "grad_second_norm": "with gradient_probe: norm of the second term (back through the K unrolled steps)",
    "grad_cosine": "with gradient_probe: cosine between the two terms (near -1: the second cancels the first; "
    "NaN at K = 0, which has no second term)",
}


def gradient_terms(parts: GANParts, real: Tensor, noise: Tensor, unroll_steps: int) -> dict[str, float]:
    """The first and second terms of the generator's gradient of f_K at `real` and G(`noise`)."""
    generator = parts.generator
    buffers = {k: v.clone() for k, v in generator.named_buffers()}  # batch norm's running statistics
    params = [p for p in generator.parameters() if p.requires_grad]
    fake = generator(noise)  # one forward pass for both terms

    def gradient(second_order: bool) -> Tensor:
        loss = unrolled_generator_loss(
            parts.discriminator, parts.d_optimizer, fake, real, unroll_steps=unroll_steps,
            d_loss=parts.discriminator_loss, g_loss=parts.generator_loss, second_order=second_order,
        )  # fmt: skip
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])

    # The stop-gradient loss is the first term alone (theta_D^K held constant): the unroll's own two variants.
    full, first = gradient(True), gradient(False)
    with torch.no_grad():  # the probe's forward pass must not move them (after the backward passes, which need them)
        for name, value in generator.named_buffers():
            value.copy_(buffers[name])
    second = full - first
    cosine = torch.nn.functional.cosine_similarity(first, second, dim=0) if unroll_steps else torch.tensor(0.0)
    return {
        "first_norm": float(first.norm()),
        "second_norm": float(second.norm()),
        "cosine": float(cosine),
        "full_over_first": float(full.norm() / first.norm()),
    }


class GradientProbe:
    """One fixed probe minibatch for a trial, drawn from its own stream, measured at every report."""

    def __init__(self, parts: GANParts, batch_size: int, unroll_steps: int):
        probe = torch.Generator().manual_seed(PROBE_SEED)
        self.parts, self.unroll_steps = parts, unroll_steps
        self.real, self.noise = parts.sample_real(batch_size, probe), parts.sample_noise(batch_size, probe)

    def metrics(self) -> dict[str, float]:
        terms = gradient_terms(self.parts, self.real, self.noise, self.unroll_steps)
        return {
            "grad_first_norm": terms["first_norm"],
            "grad_second_norm": terms["second_norm"],
            "grad_cosine": terms["cosine"] if self.unroll_steps else float("nan"),
        }
