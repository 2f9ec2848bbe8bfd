"""Stacked MNIST (Section 3.3.1): three independently drawn digits as the R, G, B channels, 1000 modes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..draws import Sampler


def to_gan_range(digits: Tensor, size: int = 32) -> Tensor:
    """uint8 [..., 28, 28] -> float in [-1, 1], padded to size x size with the background value -1."""
    margin = (size - 28) // 2
    return F.pad(digits.float() / 127.5 - 1, (margin,) * 4, value=-1.0)


def crop_to_digits(images: Tensor) -> Tensor:
    """[..., S, S] in [-1, 1] (S = 28, or 32 padded) -> [..., 28, 28] in [0, 1], the classifier's input."""
    margin = (images.shape[-1] - 28) // 2
    return ((images[..., margin : margin + 28, margin : margin + 28] + 1) / 2).clamp(0, 1)


class StackedMnist:
    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device, size: int = 32):
        self.images = torch.as_tensor(images).to(device)
        self.size = size
        self.labels = torch.as_tensor(labels).long()

    def draw(self, n: int, rng: torch.Generator) -> Tensor:
        """The random part of n samples: which digit goes in each channel, [n, 3] indices on the CPU."""
        return torch.randint(len(self.images), (n, 3), generator=rng)

    def images_of(self, which: Tensor) -> Tensor:
        """[n, 3, size, size] in [-1, 1], the digits `which` (from ``draw``) stacked as channels."""
        return to_gan_range(self.images[which.to(self.images.device)], self.size)

    def sampler(self) -> Sampler:
        """Training batches (images only), drawn as ``sample`` draws them."""
        return Sampler(self.draw, self.images.device, self.images_of)

    def sample(self, n: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """n images [n, 3, size, size] and their 1000-way labels 100 r + 10 g + b."""
        which = self.draw(n, rng)
        digits = self.labels[which]
        return self.images_of(which), digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
