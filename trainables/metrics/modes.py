"""Mode coverage of samples from a mixture with known centres.

Definitions from VEEGAN (Srivastava et al. 2017, Section 5.1) and PacGAN (Lin et al. 2018,
Section 5), the usual yardstick for the unrolled GAN's 2-D ring:

* a sample is **high quality** if it lies within ``num_std`` standard deviations of its
  nearest mode centre (3 in both papers);
* **modes** is the number of centres that are the nearest centre of at least one
  high-quality sample;
* **reverse KL** is KL(p || uniform) where p is the histogram of the high-quality samples
  over their nearest modes: log(num_modes) - H(p). It is NaN when there is no
  high-quality sample, since p is then undefined.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .histograms import kl_to_uniform


def mode_histogram(samples: Tensor, centers: Tensor, std: float, num_std: float = 3.0) -> Tensor:
    """Counts of high-quality samples per mode, shape [num_modes]."""
    distances = torch.cdist(samples.to(centers.dtype), centers)
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance <= num_std * std
    return torch.bincount(nearest[high_quality], minlength=len(centers))


def mode_metrics(samples: Tensor, centers: Tensor, std: float, num_std: float = 3.0) -> dict[str, float]:
    counts = mode_histogram(samples, centers, std, num_std)
    return {
        "modes": float((counts > 0).sum().item()),
        "high_quality_pct": 100.0 * counts.sum().item() / len(samples),
        "reverse_kl": kl_to_uniform(counts),
    }
