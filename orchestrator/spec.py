"""Sweep specifications: which experiment, which profile, which grid, where the results go."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from trainables import experiments
from trainables.errors import ConfigError
from trainables.grid_point import SEED, UNROLL_STEPS, GridPoint, pack

from . import preflight
from .preflight import SweepError

__all__ = ["SweepError", "SweepSpec"]


@dataclass(frozen=True)
class SweepSpec:
    """A grid of trials: seeds x unroll_steps x any further axes, on one experiment and profile.

    ``seeds``, ``unroll_steps`` and ``axes`` left as None take the profile's grid.
    """

    experiment: str
    profile: str = "quick"
    seeds: tuple[int, ...] | None = None
    unroll_steps: tuple[int, ...] | None = None
    axes: dict[str, tuple] | None = None
    variants: tuple[dict[str, Any], ...] | None = None
    """Named bundles of config values crossed with the grid when the fields cannot form a product
    (e.g. the second-gradient variants: full, stop-gradient, stop-gradient averaged over K)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Experiment config fields set for every trial (``--set name=value``)."""
    storage: str = "./results"
    """Local folder or URI (s3://bucket/prefix); the sweep lands in <storage>/<name>."""
    name: str | None = None
    """Defaults to <experiment>-<profile>; re-running a sweep of the same name resumes it."""
    cpus_per_trial: int = 1
    seeds_per_trial: int = 1
    """Seeds trained packed into one model per Tune trial (``trainables.packed``); each keeps its own
    rows, trial id, state and status. 1 = one seed per trial."""
    gpus_per_trial: float | None = None
    """None: the experiment's GPU share when the cluster has GPUs, else 0."""
    max_concurrent_trials: int | None = None
    max_failures: int = 2
    """Retries per trial, each from its last saved state (worker loss, preemption)."""
    cheapest_first: bool = False
    """Start the cheapest trials first (K = 0 before K = 5): the first comparisons come early, and a campaign
    that spans sessions finishes whole trials first. Off: most expensive first, the shortest wall. Only the
    order: not part of the grid, so a re-run with or without it resumes the same sweep."""

    grid: tuple[GridPoint, ...] = field(default=(), compare=False, repr=False)
    """Every trial's grid point, one seed each, in grid order; filled in by ``resolved``."""

    def resolved(self) -> SweepSpec:
        """Validate and fill in defaults from the profile, without touching any file or Ray."""
        if self.experiment not in experiments.names():
            raise SweepError(f"unknown experiment {self.experiment!r}; available: {', '.join(experiments.names())}")
        experiment = experiments.get(self.experiment)
        if self.profile not in experiment.profiles:
            raise SweepError(f"unknown profile {self.profile!r}; choose from {', '.join(experiment.profiles)}")
        profile = experiment.profiles[self.profile]
        seeds = tuple(profile.seeds if self.seeds is None else self.seeds)
        unroll = tuple(profile.unroll_steps if self.unroll_steps is None else self.unroll_steps)
        axes = {k: tuple(v) for k, v in (profile.axes if self.axes is None else self.axes).items()}
        variants = tuple(dict(v) for v in (profile.variants if self.variants is None else self.variants))
        preflight.check_grid(
            seeds, unroll, axes, variants, self.overrides, experiment.config_type.field_types(), self.experiment
        )
        name = self.experiment + "-" + self.profile if self.name is None else self.name
        preflight.check_name(name)
        preflight.check_resources(
            self.cpus_per_trial, self.seeds_per_trial, self.gpus_per_trial, self.max_concurrent_trials,
            self.max_failures,
        )  # fmt: skip
        spec = dataclasses.replace(
            self, seeds=seeds, unroll_steps=unroll, axes=axes, variants=variants, overrides=dict(self.overrides),
            name=name,
        )  # fmt: skip
        # Every grid point's config is built now, so a bad value fails here, not in a trial.
        try:
            grid = spec._grid(experiment)
        except ConfigError as error:
            raise SweepError(str(error)) from None
        if self.seeds_per_trial > 1 and experiment.config(self.profile, dict(self.overrides)).gradient_probe:
            raise SweepError("--set gradient_probe=true measures one model's gradient: drop --seeds-per-trial")
        if self.gpus_per_trial == 0 and spec.cuda_graphs:
            raise preflight.cuda_graphs_refused("drop --gpus-per-trial 0")
        return dataclasses.replace(spec, grid=grid)

    def _grid(self, experiment) -> tuple[GridPoint, ...]:
        points = []
        shared = {**self.overrides, "torch_threads": self.cpus_per_trial}
        for k in self.unroll_steps:
            for seed in self.seeds:
                for values in _products(self.axes, self.variants or ()):
                    config = experiment.config(self.profile, {**shared, **values, SEED: seed, UNROLL_STEPS: k})
                    resolved = config.to_dict()
                    own = list(experiment.axis_columns)
                    names = [*own, *sorted(n for n in values if n not in own)]
                    axes = tuple((n, resolved[n]) for n in names)
                    rest = tuple((n, v) for n, v in resolved.items() if n not in (SEED, UNROLL_STEPS, *names))
                    points.append(GridPoint((seed,), k, axes, config=rest))
        return tuple(points)

    @property
    def cuda_graphs(self) -> bool:
        """Whether the trials capture their iterations as CUDA graphs (``--set cuda_graphs=true``)."""
        return experiments.get(self.experiment).config(self.profile, dict(self.overrides)).cuda_graphs

    def grid_points(self) -> list[GridPoint]:
        """Every trial's grid point (one seed each); the spec must be ``resolved``."""
        return list(self.grid)

    def tune_points(self) -> list[GridPoint]:
        """Every Tune trial's point: ``grid_points``, or with seeds packed, up to ``seeds_per_trial`` seeds each."""
        return pack(self.grid_points(), self.seeds_per_trial)

    @property
    def num_trials(self) -> int:
        return len(self.grid)

    def grid_identity(self) -> dict[str, Any]:
        """What must match for a re-run to resume this sweep: its rows and trial states are per grid point,
        and its trials' configs must be those that wrote them."""
        return {
            "experiment": self.experiment,
            "profile": self.profile,
            "seeds": list(self.seeds),
            "unroll_steps": list(self.unroll_steps),
            "axes": {k: list(v) for k, v in self.axes.items()},
            "overrides": self.overrides,
            "cpus_per_trial": self.cpus_per_trial,
            # Only when present, so sweeps recorded before these options existed still resume.
            **({"variants": [dict(v) for v in self.variants]} if self.variants else {}),
            **({"seeds_per_trial": self.seeds_per_trial} if self.seeds_per_trial != 1 else {}),
        }

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if k != "grid"}  # the grid is rebuilt from the rest
        return json.dumps(record, sort_keys=True, default=list)


def _products(axes: dict[str, tuple], variants: tuple[dict[str, Any], ...] = ()) -> list[dict[str, Any]]:
    """The axes' product, each crossed with every variant."""
    points: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        points = [{**p, name: v} for p in points for v in values]
    return [{**p, **v} for p in points for v in variants or ({},)]
