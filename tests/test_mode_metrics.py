"""Mode metrics on sample sets whose answers are known in closed form."""

import math

import pytest
import torch

from trainables.data.ring import ring_centers, sample_ring
from trainables.metrics.modes import mode_metrics


def test_ring_has_eight_distinct_modes_on_the_circle():
    centers = ring_centers(8, 2.0)
    assert torch.allclose(centers.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    assert torch.pdist(centers).min() > 1.5  # 2 * 2 * sin(pi / 8) = 1.53


def test_data_itself_covers_all_modes_uniformly():
    centers = ring_centers(8, 2.0)
    samples = sample_ring(80_000, centers, 0.02, torch.Generator().manual_seed(0))
    m = mode_metrics(samples, centers, 0.02)
    assert m["modes"] == 8
    assert abs(m["high_quality_pct"] - 98.89) < 0.2  # P(|N(0, I_2)| <= 3) = 1 - exp(-4.5)
    assert m["reverse_kl"] < 1e-3


def test_high_quality_fraction_matches_the_2d_gaussian_tail():
    centers = ring_centers(8, 2.0)
    samples = sample_ring(200_000, centers, 0.02, torch.Generator().manual_seed(1))
    expected = 100 * (1 - math.exp(-9 / 2))  # radius of a 2-D standard normal is Rayleigh distributed
    assert abs(mode_metrics(samples, centers, 0.02)["high_quality_pct"] - expected) < 0.1


def test_all_samples_on_one_mode():
    centers = ring_centers(8, 2.0)
    samples = centers[3].repeat(100, 1)
    m = mode_metrics(samples, centers, 0.02)
    assert m == {"modes": 1.0, "high_quality_pct": 100.0, "reverse_kl": math.log(8)}


def test_two_modes_in_three_to_one_ratio_and_far_samples():
    centers = ring_centers(8, 2.0)
    samples = torch.cat([centers[0].repeat(30, 1), centers[5].repeat(10, 1), torch.zeros(60, 2, dtype=torch.float64)])
    m = mode_metrics(samples, centers, 0.02)
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert m["modes"] == 2
    assert m["high_quality_pct"] == 40.0
    assert math.isclose(m["reverse_kl"], math.log(8) + (p * p.log()).sum().item(), rel_tol=1e-12)


def test_no_high_quality_sample_gives_nan_kl():
    centers = ring_centers(8, 2.0)
    m = mode_metrics(torch.zeros(10, 2), centers, 0.02)
    assert m["modes"] == 0 and m["high_quality_pct"] == 0 and math.isnan(m["reverse_kl"])


# Stacked MNIST's 1000-class counting.
from trainables.metrics.discrete_modes import channel_correlation, discrete_mode_metrics, stacked_labels  # noqa: E402


def test_every_class_equally_often_is_zero_kl():
    m = discrete_mode_metrics(torch.arange(1000).repeat(3), 1000)
    assert m["modes"] == 1000 and abs(m["kl"]) < 1e-12


def test_one_class_is_log_1000():
    m = discrete_mode_metrics(torch.full((500,), 417), 1000)
    assert m["modes"] == 1 and math.isclose(m["kl"], math.log(1000))


def test_k_classes_equally_is_log_1000_over_k():
    for k in (2, 10, 250):
        m = discrete_mode_metrics(torch.arange(k).repeat(7), 1000)
        assert m["modes"] == k and math.isclose(m["kl"], math.log(1000 / k), rel_tol=1e-12)


def test_channels_are_labelled_separately_and_combined():
    # A stand-in classifier that reads the digit off the image's mean brightness.
    images = torch.stack([torch.full((3, 28, 28), 0.0), torch.full((3, 28, 28), 0.0)])
    images[0, 0], images[0, 1], images[0, 2] = 0.3, 0.7, 0.1
    images[1, 0], images[1, 1], images[1, 2] = 0.9, 0.0, 0.5
    labels = stacked_labels(lambda d: torch.round(d.mean(dim=(1, 2)) * 10).long(), images)
    assert labels.tolist() == [371, 905]


def test_the_grid_layout_is_veegans_and_pacgans_25_modes():
    from trainables.data.ring import grid_centers

    centers = grid_centers(25, 2.0)
    assert sorted({float(x) for x in centers[:, 0]}) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({(float(x), float(y)) for x, y in centers}) == 25


def test_layouts_are_profiles_not_copies():
    from trainables.errors import ConfigError
    from trainables.experiments import get

    mog = get("mog")
    grid, pacgan = mog.config("grid-quick"), mog.config("pacgan-ring-quick")
    assert (grid.layout, grid.num_modes, grid.std) == ("grid", 25, 0.05)
    assert (pacgan.layout, pacgan.radius, pacgan.std) == ("ring", 1.0, 0.01)
    # Input scaling keeps D's view of every layout at the same size (twice the radius or spacing).
    for cfg in (grid, pacgan, mog.config("quick")):
        assert cfg.d_input_scale == 2 * cfg.radius
    assert mog.profiles["grid-paper"].unroll_steps == (0, 5) and len(mog.profiles["grid-paper"].seeds) == 5
    with pytest.raises(ConfigError, match="square number of modes"):
        mog.config("grid-smoke", {"num_modes": 24})


def test_channel_correlation_is_one_for_grey_images_minus_one_for_inverted_and_near_zero_for_independent():
    g = torch.Generator().manual_seed(0)
    digit = torch.rand(50, 1, 8, 8, generator=g, dtype=torch.float64)
    assert channel_correlation(digit.expand(-1, 3, -1, -1)) == pytest.approx(1.0, abs=1e-12)
    # Pairs (r, g) and (r, b) are inverted, (g, b) equal: (-1 - 1 + 1) / 3.
    inverted = torch.cat([digit, -digit, -digit], 1)
    assert channel_correlation(inverted) == pytest.approx(-1 / 3, abs=1e-12)
    independent = torch.rand(4000, 3, 8, 8, generator=g)
    assert abs(channel_correlation(independent)) < 0.01  # s.e. about 1 / sqrt(64 x 4000 x 3)
    # A shift or scale of one channel leaves a Pearson correlation unchanged.
    scaled = torch.cat([digit, 3 * digit + 2, digit], 1)
    assert channel_correlation(scaled) == pytest.approx(1.0, abs=1e-12)
    flat = torch.cat([digit, torch.zeros_like(digit), digit], 1)  # a blank channel: uncorrelated
    assert channel_correlation(flat) == pytest.approx(1 / 3, abs=1e-12)


def test_real_stacked_mnist_channels_are_weakly_correlated():
    from trainables.data.mnist import load_mnist
    from trainables.data.stacked_mnist import StackedMnist

    mnist = load_mnist(None)
    data = StackedMnist(mnist.train_images, mnist.train_labels, torch.device("cpu"))
    real = channel_correlation(data.sample(5000, torch.Generator().manual_seed(0))[0])
    assert 0.25 < real < 0.45  # three independent digits share background and centre, nothing else
