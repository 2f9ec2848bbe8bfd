"""The experiments of the paper, by name, and what the orchestrator and the trial need to know about each.

The registry is the package itself: every module here whose name does not start with '_'
is an experiment and defines ``EXPERIMENT``; its report is ``analysis/experiments/<name>.py``.
Adding an experiment means adding those two files and nothing else.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..artifacts import Assets
from ..config import GANConfig
from ..errors import ConfigError
from ..metrics import gradient_terms
from ..trainer import TRAINER_METRICS, GANParts


class ExperimentRun(abc.ABC):
    """What an experiment builds for one trial: the networks and samplers, plus its metrics. Each experiment's run
    subclasses it and must define the three abstract methods; ``final`` and ``describe`` do nothing unless the
    experiment overrides them."""

    parts: GANParts

    @abc.abstractmethod
    def evaluate(self, rng: torch.Generator) -> dict[str, float]:
        """The experiment's metrics for the current generator."""

    @abc.abstractmethod
    def model_samples(self, rng: torch.Generator) -> Tensor:
        """Generated samples kept for the figures, shape [n, *sample_shape]."""

    @abc.abstractmethod
    def data_samples(self, rng: torch.Generator) -> Tensor:
        """Real samples for the same figures (written once per trial)."""

    def final(self, rng: torch.Generator) -> tuple[dict[str, float], dict[str, Tensor]]:
        """Called once at the last step, for work too costly to repeat at every report: (metrics, {kind: Tensor
        [n, ...]}); its kinds go to the samples table."""
        return {}, {}

    def describe(self, kind: str, samples: Tensor) -> dict[str, Tensor]:
        """Called on every 'model' and 'data' snapshot, for what a report needs computed from those samples
        (analysis reads Parquet only, without torch), e.g. the recovered colours of Color MNIST digits."""
        return {}


@dataclass(frozen=True)
class Profile:
    """A named budget: config changes plus the default sweep grid."""

    description: str
    values: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    unroll_steps: tuple[int, ...] = (0, 10)
    axes: dict[str, tuple] = field(default_factory=dict)
    """Further grid axes: experiment config field -> values (e.g. discriminator size)."""
    variants: tuple[dict, ...] = ()
    """Bundles of config values, each crossed with the grid above, for settings that are not a product
    of single fields (e.g. stop-gradient with and without averaging over the unrolled steps)."""


def smoke_profile(iterations: int, every: int, unroll_steps: tuple[int, ...] = (0, 1), axes=None, **values) -> Profile:
    """Every experiment's ``smoke`` profile: seconds per trial, for tests; seed 0, K = 0 and one unrolled setting,
    `iterations` long, reported and snapshotted `every` iterations, plus the experiment's small `values`."""
    return Profile(
        "seconds per trial, for tests",
        {**values, "iterations": iterations, "report_every": every, "snapshot_every": every},
        seeds=(0,),
        unroll_steps=unroll_steps,
        axes=axes or {},
    )


@dataclass(frozen=True)
class Experiment:
    name: str
    config_type: type[GANConfig]
    profiles: dict[str, Profile]
    build: Callable[[GANConfig, torch.device, Assets], ExperimentRun]
    """(config, device, assets) -> the trial's run; `assets` are the sweep's published data and metric models
    (``artifacts.LOCAL`` outside a sweep: local files)."""
    metrics: dict[str, str]
    """Metric column -> one-line definition (also the Parquet schema's metric columns). The trainer's
    own (``TRAINER_METRICS``: the last iteration's losses) and the gradient probe's (``gradient_terms.METRICS``)
    are appended to every experiment's."""
    paper_section: str = ""
    """Where the paper describes it, e.g. "3.1"; orders the listings."""
    axis_columns: tuple[str, ...] = ()
    """Config fields that are sweep axes beside seed and unroll_steps; they become Parquet columns."""
    gpu_fraction: float = 0.25
    """GPU share one trial asks for when the cluster has GPUs."""
    prepare: Callable[[GANConfig], dict] | None = None
    """Run once in the driver before trials start: what every trial must read byte for byte (data,
    a metric's classifier), as ``{name: (bytes, info)}`` for the sweep to publish (``artifacts``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", {**self.metrics, **TRAINER_METRICS, **gradient_terms.METRICS})

    def config(self, profile: str, values: dict | None = None) -> GANConfig:
        if profile not in self.profiles:
            raise ConfigError(f"unknown profile {profile!r} for {self.name}; choose from {', '.join(self.profiles)}")
        base = self.config_type().with_values(self.profiles[profile].values)
        return base.with_values(values or {})


def names() -> list[str]:
    """Every experiment, in the order the paper presents them."""
    found = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda name: (get(name).paper_section, name))


def get(name: str) -> Experiment:
    if name.startswith("_") or not name.isidentifier() or importlib.util.find_spec(f"{__name__}.{name}") is None:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}").EXPERIMENT
