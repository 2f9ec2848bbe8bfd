"""Every setting a user can pass reaches what it configures (or is refused with one line), in every experiment.

Found by a user: ``GANConfig.adam_betas`` was a classmethod, so ``--set beta1=0.9 beta2=0.99`` left both optimizers at
the class defaults in all five experiments, silently. These tests change each config field of each experiment, one
at a time, and check that the trial's outcome (its networks, optimizers, every report's metrics and samples, the
process settings it pins) changes with it.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from trainables import experiments
from trainables.errors import ConfigError
from trainables.trial import PackedTrial, Trial

NAMES = experiments.names()

BASE = {"unroll_steps": 2}
"""On top of each smoke profile: K >= 2, so that the unroll's own fields (second_order, fresh batches) can act."""

CHANGES: dict[str, tuple[dict, dict]] = {
    # field: (base values, changed values) where a field acts only beside others or has no generic alternative.
    "unroll_steps": ({"unroll_steps": 2}, {"unroll_steps": 0}),
    "average_over_unroll": ({"second_order": False}, {"second_order": False, "average_over_unroll": True}),
    "d_ensemble_size": ({"unroll_steps": 0}, {"unroll_steps": 0, "d_ensemble_size": 2}),
    "d_ensemble_every": ({"unroll_steps": 0}, {"unroll_steps": 0, "d_ensemble_every": 2}),
    "cuda_graphs": ({}, {"cuda_graphs": True}),  # refused on the CPU (see REFUSED)
    "generator_loss": ({"generator_loss": "minimax"}, {"generator_loss": "non_saturating"}),
    "layout": ({"num_modes": 9}, {"num_modes": 9, "layout": "grid"}),
    "num_modes": ({}, {"num_modes": 9}),
    "weight_init": ({"weight_init": "dcgan"}, {"weight_init": "pytorch"}),
    "g_first_norm": ({"g_first_norm": "feature"}, {"g_first_norm": "channel"}),
    "eval_batch_size": ({}, {"eval_batch_size": 4}),
    "mnist_dir": ({}, {"mnist_dir": "/nonexistent/mnist"}),  # read: a missing folder is refused (see REFUSED)
    "dataset": ({}, {"dataset": "cifar10"}),  # without cifar_dir, refused (see REFUSED)
    "cifar_dir": ({}, {"cifar_dir": "/nonexistent/cifar"}),  # refused unless the dataset is CIFAR-10
    "image_size": ({"image_size": 32}, {"image_size": 28}),
    "d_size": ({"d_size": 0.25}, {"d_size": 0.5}),
    # At smoke width (2 channels before the output) every ReLU of the eval-mode generator is dead after 4 steps, so
    # dG/dz = 0 and L-BFGS cannot move at any iteration count; at half width it can.
    "lbfgs_iterations": ({"width": 0.5}, {"width": 0.5, "lbfgs_iterations": 1}),
}

REFUSED = {"cuda_graphs", "mnist_dir", "dataset", "cifar_dir"}
"""Changes this CPU test cannot train with: each must be refused with one clear error, not ignored."""

REFUSED_IN = {("rnn_mnist", "g_first_norm"), ("image", "eval_batch_size")}
"""Fields an experiment inherits but has nothing to apply to: a changed value is refused."""

NOT_HERE = {
    # Trains the full MNIST classifier (minutes); tests/test_mnist_classifier_slow.py checks both variants.
    "classifier": "the full classifier takes minutes to train; tests/test_mnist_classifier_slow.py",
}
NOT_HERE_IN = {
    # Splits evaluation into forward passes of this size: numbers change only through batch norm's batch
    # statistics, and the LSTM generator has none, so here it bounds memory alone.
    ("rnn_mnist", "eval_batch_size"): "memory only: the LSTM generator has no batch norm",
}
"""The only way out: fields whose change cannot be made in a unit test, with where it is tested instead."""


def generic_change(config, name: str) -> dict:
    value = getattr(config, name)
    if isinstance(value, bool):
        return {name: not value}
    if name == "report_every":  # must divide snapshot_every
        return {name: 1}
    if name == "snapshot_every":
        return {name: 2 * value}
    if isinstance(value, int):
        return {name: value + 1}
    if isinstance(value, float):
        for candidate in (value * 2, value / 2):
            try:
                dataclasses.replace(config, **{name: candidate})
                return {name: candidate}
            except ConfigError:
                continue
    raise AssertionError(f"no generic change for {type(config).__name__}.{name} = {value!r}: add it to CHANGES")


def optimizer_settings(optimizer: torch.optim.Optimizer) -> tuple:
    group = optimizer.param_groups[0]
    return group["lr"], tuple(group["betas"])


_BASES: dict = {}


def base_fingerprint(experiment, values: dict) -> list:
    """``fingerprint``, computed once per (experiment, values): most fields share their base trial."""
    key = (experiment.name, tuple(sorted(values.items())))
    if key not in _BASES:
        _BASES[key] = fingerprint(experiment, values)
    return _BASES[key]


def fingerprint(experiment, values: dict) -> list:
    """What one smoke trial with `values` did: settings it pinned, optimizers, every report, final weights."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        trial = Trial(experiment, experiment.config("smoke", values))
        out: list = [torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()]
        parts = trial.run.parts
        out += [optimizer_settings(parts.g_optimizer), optimizer_settings(parts.d_optimizer)]
        out += [tuple(p.shape) for p in parts.generator.parameters()]
        out += [tuple(p.shape) for p in parts.discriminator.parameters()]
        for report in trial.reports():
            metrics = {
                k: None if isinstance(v, float) and math.isnan(v) else round(v, 9) for k, v in report.metrics.items()
            }
            samples = {k: (tuple(v.shape), round(float(v.double().sum()), 6)) for k, v in report.samples.items()}
            out.append((report.step, report.status, metrics, samples))
        out += [round(float(p.detach().double().sum()), 9) for p in parts.generator.parameters()]
        return out
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@pytest.mark.parametrize("name", NAMES)
def test_learning_rates_and_betas_reach_both_optimizers(name):
    experiment = experiments.get(name)
    values = {"g_lr": 3e-4, "d_lr": 7e-4, "beta1": 0.9, "beta2": 0.99}
    configs = [experiment.config("smoke", {**values, "seed": seed}) for seed in (0, 1)]
    for trial in (Trial(experiment, configs[0]), PackedTrial(experiment, configs)):
        parts = trial.trainer.parts
        assert optimizer_settings(parts.g_optimizer) == (3e-4, (0.9, 0.99))
        assert optimizer_settings(parts.d_optimizer) == (7e-4, (0.9, 0.99))


def field_cases():
    for name in NAMES:
        for field in dataclasses.fields(experiments.get(name).config_type):
            if field.name not in NOT_HERE and (name, field.name) not in NOT_HERE_IN:
                yield pytest.param(name, field.name, id=f"{name}-{field.name}")


@pytest.mark.parametrize("name,field", list(field_cases()))
def test_changing_a_field_changes_the_trial(name, field):
    experiment = experiments.get(name)
    config = experiment.config("smoke", BASE)
    base, changed = CHANGES[field] if field in CHANGES else ({}, generic_change(config, field))
    base, changed = {**BASE, **base}, {**BASE, **base, **changed}
    if field in REFUSED or (name, field) in REFUSED_IN:
        with pytest.raises((ConfigError, ValueError, FileNotFoundError, RuntimeError)) as refused:
            fingerprint(experiment, changed)
        assert str(refused.value) and "\n" not in str(refused.value)
        return
    assert fingerprint(experiment, changed) != base_fingerprint(experiment, base), f"{name}: {field} changed nothing"
