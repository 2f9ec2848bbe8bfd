"""Color MNIST (Section 3.3.2, Appendix F): a digit painted with a random colour, plus pixel noise.

[R] For a digit I in [0, 1] (padded to 32x32) and a colour C ~ N(0, colour_std^2) per RGB channel,
the image is I * C + (I - 1) + N(0, noise_std^2) per pixel, clipped to [-1, 1]: background pixels
sit at -1 and the digit's strokes take the colour C.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..draws import Sampler


class ColorMnist:
    def __init__(self, images: np.ndarray, device: torch.device, colour_std: float = 0.5, noise_std: float = 0.2):
        if colour_std <= 0 or noise_std < 0:
            raise ValueError(f"colour_std must be > 0 and noise_std >= 0, got {colour_std} and {noise_std}")
        self.images = torch.as_tensor(images).to(device)
        self.colour_std, self.noise_std = colour_std, noise_std

    def draw(self, n: int, rng: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """The random part of n samples on the CPU: digit indices [n], colours [n, 3], pixel noise [n, 3, 32, 32]."""
        which = torch.randint(len(self.images), (n,), generator=rng)
        colours = self.colour_std * torch.randn(n, 3, generator=rng)
        noise = self.noise_std * torch.randn(n, 3, 32, 32, generator=rng)
        return which, colours, noise

    def images_of(self, drawn: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """[n, 3, 32, 32] in [-1, 1]: the coloured, noised digits of a ``draw``."""
        device = self.images.device
        which, colours, noise = (t.to(device) for t in drawn)
        digit = F.pad(self.images[which].float() / 255, (2, 2, 2, 2)).unsqueeze(1)  # [n, 1, 32, 32]
        return (digit * colours[:, :, None, None] + (digit - 1) + noise).clamp(-1, 1)

    def sampler(self) -> Sampler:
        """Training batches (images only), drawn as ``sample`` draws them."""
        return Sampler(self.draw, self.images.device, self.images_of)

    def sample(self, n: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """n images [n, 3, 32, 32] in [-1, 1] and their colours [n, 3]; deterministic given rng's state."""
        drawn = self.draw(n, rng)
        return self.images_of(drawn), drawn[1]
