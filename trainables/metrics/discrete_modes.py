"""Mode counting over the 1000 classes of Stacked MNIST (Metz et al. 2017, Section 3.3.1; PacGAN, Section 5).

Each colour channel of a generated image is labelled by the MNIST classifier; the image's class
is 100 r + 10 g + b. **modes** = classes with at least one sample; **KL(model || data)** =
sum_c q_c log(q_c / p_c) with q the samples' class histogram and p uniform (1/1000), which is
log(1000) - H(q).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .histograms import kl_to_uniform


def discrete_mode_metrics(labels: Tensor, num_classes: int) -> dict[str, float]:
    counts = torch.bincount(labels.long(), minlength=num_classes)
    return {"modes": float((counts > 0).sum().item()), "kl": kl_to_uniform(counts)}


@torch.no_grad()
def stacked_labels(classify, images: Tensor) -> Tensor:
    """[n, 3, 28, 28] images in [0, 1] -> labels in 0..999 (classify: [m, 28, 28] -> [m] digits)."""
    digits = classify(images.reshape(-1, 28, 28)).view(-1, 3).long()
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


@torch.no_grad()
def channel_correlation(images: Tensor) -> float:
    """The mean, over images and the three channel pairs, of the Pearson correlation between two channels' pixels.

    Three independent digits correlate weakly (about 0.33 on real Stacked MNIST at 32x32: the shared
    background and centred strokes); a generator that repeats one digit in every channel (grey images)
    approaches 1. A channel with no variation counts as uncorrelated."""
    x = images.flatten(2).double()
    x = x - x.mean(2, keepdim=True)
    norm = x.norm(dim=2, keepdim=True)
    x = torch.where(norm > 0, x / norm.clamp_min(1e-300), 0.0)
    pairs = [(x[:, i] * x[:, j]).sum(1) for i in range(x.shape[1]) for j in range(i + 1, x.shape[1])]
    return float(torch.stack(pairs).mean())
