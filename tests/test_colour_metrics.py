"""Color MNIST: data generation, colour recovery on images of known colour, JS estimates with known answers."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.experiments.color_mnist import claims_at
from analysis.stats import unroll_against_none
from trainables.data.color_mnist import ColorMnist
from trainables.errors import ConfigError
from trainables.experiments import get
from trainables.metrics.colours import GaussianKde, js_divergence_monte_carlo, kde_js_divergence, recover_colours


def gaussian_log_pdf(mean, std):
    return lambda x: (-0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))).sum(dim=1)


def js_by_quadrature(mean_p, mean_q, std=1.0):
    """Reference JS (nats) of two 1-D Gaussians by trapezoidal integration on a fine grid."""
    x = np.linspace(-12, 12 + abs(mean_q - mean_p), 200_001)
    p = np.exp(-0.5 * ((x - mean_p) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    q = np.exp(-0.5 * ((x - mean_q) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    m = (p + q) / 2
    integrand = 0.5 * p * np.log(np.where(p > 0, p / m, 1)) + 0.5 * q * np.log(np.where(q > 0, q / m, 1))
    return np.trapezoid(integrand, x)


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0, 2.0, 40.0])
def test_monte_carlo_js_of_exact_gaussians_matches_quadrature(shift):
    g = torch.Generator().manual_seed(0)
    n = 200_000
    from_p = torch.randn(n, 1, generator=g, dtype=torch.float64)
    from_q = torch.randn(n, 1, generator=g, dtype=torch.float64) + shift
    estimate = js_divergence_monte_carlo(gaussian_log_pdf(0.0, 1.0), gaussian_log_pdf(shift, 1.0), from_p, from_q)
    assert abs(estimate - js_by_quadrature(0.0, shift)) < 3e-3


@pytest.mark.slow  # 20,000 Monte Carlo points on 4,000-point KDEs: ~35 s
def test_kde_js_tends_to_the_true_value():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4_000, 1, generator=g)
    b = torch.randn(4_000, 1, generator=g) + 1.0
    assert abs(kde_js_divergence(a, b, 20_000, g) - js_by_quadrature(0.0, 1.0)) < 0.02
    assert kde_js_divergence(a, torch.randn(4_000, 1, generator=g), 20_000, g) < 0.01
    assert abs(kde_js_divergence(a, b + 50, 5_000, g) - math.log(2)) < 1e-6


def test_kde_integrates_to_one_and_uses_scotts_bandwidth():
    points = torch.randn(500, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kde = GaussianKde(points)
    assert torch.isclose(kde.bandwidth[0], points.std() * 500 ** (-1 / 5))
    x = torch.linspace(-8, 8, 20_001, dtype=torch.float64)[:, None]
    assert abs(torch.trapezoid(kde.log_pdf(x).exp(), x[:, 0]).item() - 1) < 1e-6


def test_colours_of_crisp_digits_are_recovered():
    g = torch.Generator().manual_seed(3)
    n = 300
    colours = torch.rand(n, 3, generator=g) * 1.4 - 0.7
    mask = torch.zeros(n, 1, 32, 32)
    mask[:, :, 6:26, 13:19] = 1  # a 20x6 stroke: 120 of 1024 pixels
    images = (mask * colours[:, :, None, None] + (mask - 1) + 0.2 * torch.randn(n, 3, 32, 32, generator=g)).clamp(-1, 1)
    recovered = recover_colours(images)
    assert (recovered - colours).abs().max() < 0.08
    assert (recovered - colours).abs().mean() < 0.02


def test_colour_mnist_is_deterministic_given_a_seed_and_paints_the_stroke():
    digits = np.zeros((5, 28, 28), dtype=np.uint8)
    digits[:, 10:18, 12:16] = 255
    data = ColorMnist(digits, torch.device("cpu"), colour_std=0.5, noise_std=0.0)
    images, colours = data.sample(4, torch.Generator().manual_seed(7))
    again, _ = data.sample(4, torch.Generator().manual_seed(7))
    assert torch.equal(images, again)
    assert torch.allclose(images[:, :, 12, 14], colours.clamp(-1, 1))  # stroke pixel (padded by 2)
    assert torch.all(images[:, :, 0, 0] == -1)  # background
    assert torch.allclose(recover_colours(images), colours.clamp(-1, 1), atol=1e-6)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"layer_size": 0.0}, "layer_size"),
        ({"layer_size": -0.5}, "layer_size"),
        ({"colour_std": 0.0}, "colour_std"),
        ({"colour_std": 3.0}, "colour_std"),
        ({"noise_std": 1.5}, "noise_std"),
    ],
)
def test_bad_colour_parameters(values, message):
    with pytest.raises(ConfigError, match=message):
        get("color_mnist").config("smoke", values)


def test_the_report_tests_k1_for_the_harm_the_paper_reads_and_larger_k_for_the_gain():
    js = {0: [0.30, 0.31, 0.32, 0.33, 0.34], 1: [0.40, 0.41, 0.42, 0.43, 0.44], 5: [0.10, 0.11, 0.12, 0.13, 0.14]}
    final = pd.DataFrame(
        [
            {"layer_size": 0.5, "unroll_steps": k, "seed": s, "js": v, "colour_spread": 1 - v}
            for k, values in js.items()
            for s, v in enumerate(values)
        ]
    )
    tests = unroll_against_none(final, claims_at, axes=("layer_size",)).set_index(["unroll_steps", "metric"])
    assert tests.loc[(1, "js"), "claimed"] == "higher" and tests.loc[(1, "colour_spread"), "claimed"] == "lower"
    assert tests.loc[(5, "js"), "claimed"] == "lower" and tests.loc[(5, "colour_spread"), "claimed"] == "higher"
    assert tests["supported"].all() and (tests["baseline_seeds"] == 5).all()
