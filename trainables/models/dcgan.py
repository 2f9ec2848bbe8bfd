"""DCGAN-style convolutional networks with 3x3 kernels (Stacked/Color MNIST, image model).

Generator: z -> linear to 4x4 x C0, then transposed convolutions (stride 2) doubling the size
to 32x32, then a stride-1 convolution to the output channels and tanh. Discriminator: stride-2
convolutions, each followed by batch norm (the paper's Appendices C and D; optional) and leaky
ReLU, then a linear layer to one logit.
"""

from __future__ import annotations

from torch import Tensor, nn


class DcganGenerator(nn.Module):
    def __init__(self, noise_dim: int, base_channels: int, widths: tuple[int, ...], out_channels: int):
        super().__init__()
        self.base_channels = base_channels
        self.project = nn.Sequential(
            nn.Linear(noise_dim, 4 * 4 * base_channels), nn.BatchNorm1d(4 * 4 * base_channels), nn.ReLU()
        )
        layers: list[nn.Module] = []
        channels = base_channels
        for width in widths:
            layers += [
                nn.ConvTranspose2d(channels, width, 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            channels = width
        layers += [nn.Conv2d(channels, out_channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z).view(len(z), self.base_channels, 4, 4))


class DcganDiscriminator(nn.Module):
    def __init__(
        self, in_channels: int, widths: tuple[int, ...], image_size: int = 32, leak: float = 0.3, batchnorm: bool = True
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for width in widths:
            layers.append(nn.Conv2d(channels, width, 3, stride=2, padding=1))
            # After every layer, as the paper's Appendix C says of the LSTM experiment's D and PacGAN's
            # re-implementation does for Stacked MNIST. Real and fake batches go through D separately,
            # so it normalises away what a whole batch shares; see MnistGANConfig.d_batchnorm.
            if batchnorm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(leak))
            channels, size = width, (size + 1) // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.logit = nn.Linear(channels * size * size, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.logit(self.body(x)).squeeze(1)


def scaled_widths(widths: tuple[int, ...], scale: float) -> tuple[int, ...]:
    """Channel counts times `scale`, at least 1 each (e.g. (8, 16, 32) x 1/4 = (2, 4, 8))."""
    return tuple(max(1, round(w * scale)) for w in widths)
