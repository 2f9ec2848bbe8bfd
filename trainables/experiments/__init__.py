"""The experiments of the paper, by name, and what the orchestrator and the trial need to know about each."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from torch import Tensor

from ..config import ConfigError, GANConfig
from ..trainer import GANParts


class ExperimentRun(Protocol):
    """What an experiment builds for one trial: the networks and samplers, plus its metrics."""

    parts: GANParts

    def evaluate(self, rng: torch.Generator) -> dict[str, float]:
        """The experiment's metrics for the current generator."""

    def model_samples(self, rng: torch.Generator) -> Tensor:
        """Generated samples kept for the figures, shape [n, *sample_shape]."""

    def data_samples(self, rng: torch.Generator) -> Tensor:
        """Real samples for the same figures (written once per trial)."""

    # Optional: ``final(rng) -> (metrics, {kind: Tensor [n, ...]})``, called once at the last step for
    # work too costly to repeat at every report; its kinds go to the samples table.


@dataclass(frozen=True)
class Profile:
    """A named budget: config changes plus the default sweep grid."""

    description: str
    values: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    unroll_steps: tuple[int, ...] = (0, 10)
    axes: dict[str, tuple] = field(default_factory=dict)
    """Further grid axes: experiment config field -> values (e.g. discriminator size)."""


@dataclass(frozen=True)
class Experiment:
    name: str
    config_type: type[GANConfig]
    profiles: dict[str, Profile]
    build: Callable[[GANConfig, torch.device], ExperimentRun]
    metrics: dict[str, str]
    """Metric column -> one-line definition (also the Parquet schema's metric columns)."""
    axis_columns: tuple[str, ...] = ()
    """Config fields that are sweep axes beside seed and unroll_steps; they become Parquet columns."""
    gpu_fraction: float = 0.25
    """GPU share one trial asks for when the cluster has GPUs."""
    prepare: Callable[[GANConfig], None] | None = None
    """Run once in the driver before trials start (fetch data, train a metric's classifier)."""

    def config(self, profile: str, values: dict | None = None) -> GANConfig:
        if profile not in self.profiles:
            raise ConfigError(f"unknown profile {profile!r} for {self.name}; choose from {', '.join(self.profiles)}")
        base = self.config_type().with_values(self.profiles[profile].values)
        return base.with_values(values or {})


# Modules are imported on first use so that listing experiments stays cheap.
_MODULES = {
    "mog": "trainables.experiments.mog",
    "stacked_mnist": "trainables.experiments.stacked_mnist",
    "color_mnist": "trainables.experiments.color_mnist",
    "rnn_mnist": "trainables.experiments.rnn_mnist",
    "image": "trainables.experiments.image",
}


def names() -> list[str]:
    return list(_MODULES)


def get(name: str) -> Experiment:
    if name not in _MODULES:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name]).EXPERIMENT
