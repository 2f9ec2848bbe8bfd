"""The gradient probe (``--set gradient_probe=true``): the two terms of the generator's gradient, measured at
every report without touching the training run, and refused where it cannot measure one model."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator.spec import SweepError, SweepSpec
from trainables import experiments
from trainables.errors import ConfigError
from trainables.metrics.gradient_terms import GradientProbe, gradient_terms
from trainables.trial import PackedTrial, Trial
from trainables.unrolled import unrolled_generator_loss

MOG = experiments.get("mog")


def run(values: dict) -> tuple[list, list[float]]:
    trial = Trial(MOG, MOG.config("smoke", values))
    reports = list(trial.reports())
    weights = [float(p.detach().double().sum()) for p in trial.run.parts.generator.parameters()]
    return reports, weights


def test_probe_reports_both_terms_and_leaves_training_untouched():
    plain, plain_weights = run({"unroll_steps": 3})
    probed, probed_weights = run({"unroll_steps": 3, "gradient_probe": True})
    assert probed_weights == plain_weights
    assert len(plain) == len(probed) > 1
    for a, b in zip(plain, probed, strict=True):
        for loss in ("g_loss", "d_loss"):  # NaN at step 0, before any update
            assert a.metrics[loss] == b.metrics[loss] or math.isnan(a.metrics[loss]) and math.isnan(b.metrics[loss])
        assert b.metrics["grad_first_norm"] > 0 and b.metrics["grad_second_norm"] > 0
        assert -1 <= b.metrics["grad_cosine"] <= 1
        assert math.isnan(a.metrics["grad_cosine"])  # not measured without the option


def test_terms_split_the_unrolled_gradient_exactly():
    """first + second = d f_K / d theta_G, and first is the gradient with theta_D^K held constant (float64)."""
    torch.manual_seed(0)
    trial = Trial(MOG, MOG.config("smoke", {"unroll_steps": 3}))
    parts = trial.run.parts
    parts.generator.double(), parts.discriminator.double()
    rng = torch.Generator().manual_seed(1)
    real, noise = parts.sample_real(64, rng).double(), parts.sample_noise(64, rng).double()
    terms = gradient_terms(parts, real, noise, unroll_steps=3)

    params = list(parts.generator.parameters())

    def gradient(second_order: bool) -> torch.Tensor:
        loss = unrolled_generator_loss(
            parts.discriminator, parts.d_optimizer, parts.generator(noise), real, unroll_steps=3,
            d_loss=parts.discriminator_loss, g_loss=parts.generator_loss, second_order=second_order,
        )  # fmt: skip
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    full, first = gradient(True), gradient(False)
    second = full - first
    assert terms["first_norm"] == pytest.approx(float(first.norm()), rel=1e-12)
    assert terms["second_norm"] == pytest.approx(float(second.norm()), rel=1e-12)
    expected_cosine = float(first @ second / (first.norm() * second.norm()))
    assert terms["cosine"] == pytest.approx(expected_cosine, rel=1e-10)
    assert terms["second_norm"] > 1e-6  # K = 3 has a second term to split off


def test_zero_unroll_has_no_second_term():
    trial = Trial(MOG, MOG.config("smoke", {"unroll_steps": 0}))
    metrics = GradientProbe(trial.run.parts, 32, 0).metrics()
    assert metrics["grad_second_norm"] == 0 and metrics["grad_first_norm"] > 0
    assert math.isnan(metrics["grad_cosine"])


def test_probe_refused_with_packed_seeds():
    configs = [MOG.config("smoke", {"gradient_probe": True, "seed": s}) for s in (0, 1)]
    with pytest.raises(ConfigError, match="one seed per trial"):
        PackedTrial(MOG, configs)
    spec = SweepSpec("mog", "smoke", seeds_per_trial=2, overrides={"gradient_probe": "true"})
    with pytest.raises(SweepError, match="seeds-per-trial"):
        spec.resolved()
