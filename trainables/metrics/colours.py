"""Continuous mode collapse on Color MNIST (Metz et al. 2017, Section 3.3.2).

**Colour recovery**: each image's pixels (RGB vectors) are split into two clusters by k-means
(k = 2; the background cluster is started at the image's median pixel, the other at the pixel
farthest from it); the smaller cluster is the digit, and its per-channel median is the digit's colour.

**JS divergence** between the colour distributions of data and model: a Gaussian kernel density
estimate is fitted to each set of colours (Scott's rule bandwidth, per dimension), and
JS = 1/2 KL(p || m) + 1/2 KL(q || m) with m = (p + q) / 2 is estimated by Monte Carlo with
`points` draws from each density. In nats, between 0 and log 2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def recover_colours(images: Tensor, iterations: int = 10) -> Tensor:
    """[n, 3, H, W] images -> [n, 3] foreground colours (batched 2-means over each image's pixels)."""
    pixels = images.flatten(2).transpose(1, 2).double()  # [n, P, 3]
    background = pixels.median(dim=1).values
    farthest = (pixels - background[:, None]).norm(dim=2).argmax(dim=1)
    foreground = pixels[torch.arange(len(pixels)), farthest]
    centres = torch.stack([background, foreground], dim=1)  # [n, 2, 3]
    for _ in range(iterations):
        assign = torch.cdist(pixels, centres).argmin(dim=2)  # [n, P]
        for k in (0, 1):
            mask = (assign == k).unsqueeze(2).double()
            count = mask.sum(dim=1)
            centres[:, k] = torch.where(count > 0, (pixels * mask).sum(dim=1) / count.clamp(min=1), centres[:, k])
    assign = torch.cdist(pixels, centres).argmin(dim=2)
    foreground_label = ((assign == 1).sum(dim=1) > (assign == 0).sum(dim=1)).long()  # the smaller cluster
    is_foreground = assign != foreground_label[:, None]
    # Median, not mean: anti-aliased stroke edges blend the colour with the background and
    # would pull a mean towards it.
    masked = torch.where(is_foreground[:, :, None], pixels, torch.nan)
    return masked.nanmedian(dim=1).values.float()


class GaussianKde:
    """Product-Gaussian kernel density with Scott's bandwidth h_d = std_d * n^(-1/(d+4))."""

    def __init__(self, points: Tensor):
        self.points = points.double()
        n, d = self.points.shape
        self.bandwidth = self.points.std(dim=0).clamp(min=1e-6) * n ** (-1 / (d + 4))

    def log_pdf(self, x: Tensor, chunk: int = 4096) -> Tensor:
        n, d = self.points.shape
        norm = -math.log(n) - d / 2 * math.log(2 * math.pi) - self.bandwidth.log().sum()
        out = []
        for part in x.double().split(chunk):
            z = (part[:, None, :] - self.points[None]) / self.bandwidth
            out.append(torch.logsumexp(-0.5 * (z * z).sum(dim=2), dim=1) + norm)
        return torch.cat(out)

    def sample(self, n: int, rng: torch.Generator) -> Tensor:
        which = torch.randint(len(self.points), (n,), generator=rng)
        return self.points[which] + self.bandwidth * torch.randn(
            n, self.points.shape[1], generator=rng, dtype=torch.float64
        )


def js_divergence_monte_carlo(log_p, log_q, from_p: Tensor, from_q: Tensor) -> float:
    """JS(p, q) in nats from samples of each and their log densities (callables)."""

    def half_kl_to_mixture(log_own, log_other, x):
        own, other = log_own(x), log_other(x)
        log_mixture = torch.logaddexp(own, other) - math.log(2)
        return 0.5 * (own - log_mixture).mean().item()

    return half_kl_to_mixture(log_p, log_q, from_p) + half_kl_to_mixture(log_q, log_p, from_q)


def kde_js_divergence(data: Tensor, model: Tensor, points: int, rng: torch.Generator) -> float:
    p, q = GaussianKde(data), GaussianKde(model)
    return js_divergence_monte_carlo(p.log_pdf, q.log_pdf, p.sample(points, rng), q.sample(points, rng))
