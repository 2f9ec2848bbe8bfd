"""Mode metrics on sample sets whose answers are known in closed form."""
import math

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
