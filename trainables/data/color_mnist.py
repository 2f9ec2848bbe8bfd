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


class ColorMnist:
    def __init__(self, images: np.ndarray, device: torch.device, colour_std: float = 0.5, noise_std: float = 0.2):
        if colour_std <= 0 or noise_std < 0:
            raise ValueError(f"colour_std must be > 0 and noise_std >= 0, got {colour_std} and {noise_std}")
        self.images = torch.as_tensor(images).to(device)
        self.colour_std, self.noise_std = colour_std, noise_std

    def sample(self, n: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """n images [n, 3, 32, 32] in [-1, 1] and their colours [n, 3]; deterministic given rng's state."""
        which = torch.randint(len(self.images), (n,), generator=rng)
        colours = self.colour_std * torch.randn(n, 3, generator=rng)
        noise = self.noise_std * torch.randn(n, 3, 32, 32, generator=rng)
        device = self.images.device
        digit = F.pad(self.images[which.to(device)].float() / 255, (2, 2, 2, 2)).unsqueeze(1)  # [n, 1, 32, 32]
        images = digit * colours.to(device)[:, :, None, None] + (digit - 1) + noise.to(device)
        return images.clamp(-1, 1), colours
