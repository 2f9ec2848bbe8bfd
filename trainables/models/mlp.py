"""Fully connected networks for the 2-D experiment."""

from __future__ import annotations

from torch import Tensor, nn


def mlp(sizes: list[int], init_gain: float) -> nn.Sequential:
    """Linear layers with ReLU between them, orthogonally initialised weights and zero biases."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(fan_in, fan_out)
        nn.init.orthogonal_(linear.weight, gain=init_gain)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ScaledInput(nn.Module):
    """Divides the input by a constant before the wrapped network (the paper's D sees x / 4)."""

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x / self.scale)
