"""DCGAN-style convolutional networks with 3x3 kernels (Stacked/Color MNIST, image model).

Generator: z -> linear to 4x4 x C0, then transposed convolutions (stride 2) doubling the size
to the image size (32, or 28 as 4 -> 7 -> 14 -> 28), then a stride-1 convolution to the output
channels and tanh. Discriminator: stride-2 convolutions, each followed by batch norm (the paper's
Appendices C and D; optional) and leaky ReLU, then a linear layer to one logit.
"""

from __future__ import annotations

from torch import Tensor, nn

WEIGHT_INITS = ("dcgan", "pytorch")
"""'dcgan': weights N(0, 0.02) (convolutions truncated at 2 std), biases 0, as Radford et al. (2015) and the
TensorFlow DCGAN that PacGAN's re-implementation builds on; 'pytorch': PyTorch's layer defaults."""
GENERATOR_NORMS = ("channel", "feature")
"""The generator's first batch norm: 'channel' after the reshape to C0 x 4 x 4 (statistics over N x 4 x 4,
as DCGAN-TensorFlow), 'feature' on the 16 C0 linear outputs (one statistic per feature)."""


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation, in place: N(0, 0.02) weights and zero biases for every conv and linear layer."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.trunc_normal_(layer.weight, std=0.02, a=-0.04, b=0.04)
        elif isinstance(layer, nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(layer.weight, std=0.02)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def _initialised(module: nn.Module, weight_init: str) -> None:
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {', '.join(WEIGHT_INITS)}, got {weight_init!r}")
    if weight_init == "dcgan":
        dcgan_init(module)


class DcganGenerator(nn.Module):
    def __init__(
        self,
        noise_dim: int,
        base_channels: int,
        widths: tuple[int, ...],
        out_channels: int,
        image_size: int = 32,
        first_norm: str = "feature",
        weight_init: str = "pytorch",
    ):
        super().__init__()
        if first_norm not in GENERATOR_NORMS:
            raise ValueError(f"first_norm must be one of {', '.join(GENERATOR_NORMS)}, got {first_norm!r}")
        sizes = [image_size // 2**i for i in reversed(range(len(widths)))]
        if (sizes[0] + 1) // 2 != 4 or any(-(-sizes[i + 1] // 2) != sizes[i] for i in range(len(sizes) - 1)):
            raise ValueError(f"image_size {image_size} cannot be reached from 4x4 in {len(widths)} doublings")
        self.base_channels = base_channels
        self.linear = nn.Linear(noise_dim, 4 * 4 * base_channels)
        self.first_norm = (
            nn.BatchNorm1d(16 * base_channels) if first_norm == "feature" else nn.BatchNorm2d(base_channels)
        )
        layers: list[nn.Module] = []
        channels, size = base_channels, 4
        for width, target in zip(widths, sizes):
            # A 3x3, stride-2 transposed conv with padding 1 gives 2 size - 1, plus output_padding.
            layers += [
                nn.ConvTranspose2d(channels, width, 3, stride=2, padding=1, output_padding=target - (2 * size - 1)),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            channels, size = width, target
        layers += [nn.Conv2d(channels, out_channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        _initialised(self, weight_init)

    def forward(self, z: Tensor) -> Tensor:
        h = self.linear(z)
        if isinstance(self.first_norm, nn.BatchNorm1d):
            h = self.first_norm(h).view(len(z), self.base_channels, 4, 4)
        else:
            h = self.first_norm(h.view(len(z), self.base_channels, 4, 4))
        return self.body(h.relu())


class DcganDiscriminator(nn.Module):
    def __init__(
        self,
        in_channels: int,
        widths: tuple[int, ...],
        image_size: int = 32,
        leak: float = 0.3,
        batchnorm: bool = True,
        weight_init: str = "pytorch",
        batchnorm_first: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for index, width in enumerate(widths):
            layers.append(nn.Conv2d(channels, width, 3, stride=2, padding=1))
            # After every layer, as the paper's Appendix C says of the LSTM experiment's D and PacGAN's
            # re-implementation does for Stacked MNIST. Real and fake batches go through D separately,
            # so it normalises away what a whole batch shares; see MnistGANConfig.d_batchnorm.
            # `batchnorm_first=False` leaves the input layer without it, as Radford et al. (2015) advise.
            if batchnorm and (index > 0 or batchnorm_first):
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(leak))
            channels, size = width, (size + 1) // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.logit = nn.Linear(channels * size * size, 1)
        _initialised(self, weight_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.logit(self.body(x)).squeeze(1)


def scaled_widths(widths: tuple[int, ...], scale: float) -> tuple[int, ...]:
    """Channel counts times `scale`, at least 1 each (e.g. (8, 16, 32) x 1/4 = (2, 4, 8))."""
    return tuple(max(1, round(w * scale)) for w in widths)
