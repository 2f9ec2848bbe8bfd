"""Sweep specifications: which experiment, which profile, which grid, where the results go."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from trainables import experiments
from trainables.errors import ConfigError

# A sweep lands in <storage>/<name>/: no separator, no '..', nothing a shell or a URI reads specially.
SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class SweepError(ValueError):
    """A sweep cannot start; the message is one line for the user."""


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
        if not seeds:
            raise SweepError("--seeds needs at least one seed")
        if not unroll:
            raise SweepError("--unroll-steps needs at least one value")
        for value in seeds:
            if not _is_int(value):
                raise SweepError(f"seeds must be integers, got {value!r}")
        for name in ("seeds", "unroll_steps"):
            values = seeds if name == "seeds" else unroll
            if len(set(values)) != len(values):
                raise SweepError(f"{name} has repeated values: {list(values)}")
        fields = experiment.config_type.field_types()
        unknown_axes = sorted(set(axes) - set(fields) | set(axes) & {"seed", "unroll_steps"})
        if unknown_axes:
            raise SweepError(
                f"--axis {', '.join(unknown_axes)}: not a config field of {self.experiment} that can be an axis "
                f"(seeds and unroll steps have their own options)"
            )
        _check_variants(variants, fields, axes)
        name = self.name or f"{self.experiment}-{self.profile}"
        if not SWEEP_NAME.fullmatch(name) or name.strip(".") == "":
            raise SweepError(
                f"sweep name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                f"(at most 100, starting with a letter or digit), so the sweep stays inside its storage"
            )
        if self.cpus_per_trial < 1:
            raise SweepError(f"cpus per trial must be at least 1, got {self.cpus_per_trial}")
        if not _is_int(self.seeds_per_trial) or self.seeds_per_trial < 1:
            raise SweepError(f"seeds per trial must be a positive integer, got {self.seeds_per_trial!r}")
        gpus = self.gpus_per_trial
        if gpus is not None and not (math.isfinite(gpus) and gpus >= 0):
            raise SweepError(f"gpus per trial must be a finite number >= 0 (0 = CPU only), got {gpus}")
        if gpus is not None and gpus > 1 and gpus != int(gpus):
            # Ray shares a GPU only as a fraction below 1; above that it needs whole GPUs.
            raise SweepError(f"gpus per trial above 1 must be a whole number, got {gpus}")
        reserved = {"seed", "unroll_steps", *axes, *(variants[0] if variants else ())}
        clash = sorted(reserved & set(self.overrides))
        if clash:
            raise SweepError(f"--set {', '.join(clash)}: these are sweep axes, use their own options")
        # Build one trial's config per grid point now, so a bad value fails here, not in a trial.
        try:
            for seed in seeds[:1]:
                for k in unroll:
                    for point in _grid_points(axes, variants):
                        experiment.config(self.profile, {**self.overrides, "seed": seed, "unroll_steps": k, **point})
        except ConfigError as error:
            raise SweepError(str(error)) from None
        if self.seeds_per_trial > 1 and experiment.config(self.profile, dict(self.overrides)).gradient_probe:
            raise SweepError("--set gradient_probe=true measures one model's gradient: drop --seeds-per-trial")
        if gpus == 0 and self.cuda_graphs:
            raise SweepError("--set cuda_graphs=true needs GPU trials; drop --gpus-per-trial 0")
        return SweepSpec(
            experiment=self.experiment,
            profile=self.profile,
            seeds=seeds,
            unroll_steps=unroll,
            axes=axes,
            variants=variants,
            overrides=dict(self.overrides),
            storage=self.storage,
            name=name,
            cpus_per_trial=self.cpus_per_trial,
            seeds_per_trial=self.seeds_per_trial,
            gpus_per_trial=self.gpus_per_trial,
            max_concurrent_trials=self.max_concurrent_trials,
            max_failures=self.max_failures,
        )

    @property
    def cuda_graphs(self) -> bool:
        """Whether the trials capture their iterations as CUDA graphs (``--set cuda_graphs=true``)."""
        return experiments.get(self.experiment).config(self.profile, dict(self.overrides)).cuda_graphs

    def grid_points(self) -> list[dict[str, Any]]:
        """Every trial's grid point: seed, unroll_steps and the further axes."""
        return self._points([{"seed": seed} for seed in self.seeds])

    def tune_points(self) -> list[dict[str, Any]]:
        """Every Tune trial's point: ``grid_points``, or with seeds packed, ``seeds`` lists of up to
        ``seeds_per_trial`` seeds in place of ``seed``."""
        if self.seeds_per_trial == 1:
            return self.grid_points()
        size = self.seeds_per_trial
        return self._points([{"seeds": list(self.seeds[i : i + size])} for i in range(0, len(self.seeds), size)])

    def _points(self, seed_entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**entry, "unroll_steps": k, **point}
            for k in self.unroll_steps
            for entry in seed_entries
            for point in _grid_points(self.axes, self.variants or ())
        ]

    @property
    def num_trials(self) -> int:
        return len(self.grid_points())

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
        return json.dumps(asdict(self), sort_keys=True, default=list)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _grid_points(axes: dict[str, tuple], variants: tuple[dict[str, Any], ...] = ()) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        points = [{**p, name: v} for p in points for v in values]
    return [{**p, **v} for p in points for v in variants or ({},)]


def _check_variants(variants: tuple[dict[str, Any], ...], fields: dict[str, type], axes: dict) -> None:
    if not variants:
        return
    keys = set(variants[0])
    for variant in variants:
        if not variant or set(variant) != keys:
            raise SweepError(f"every variant must set the same fields ({', '.join(sorted(keys))}), got {variant}")
    bad = sorted(keys - set(fields) | keys & {"seed", "unroll_steps", *axes})
    if bad:
        raise SweepError(f"variant field(s) {', '.join(bad)}: not config fields, or already a grid axis")
    if len({json.dumps(v, sort_keys=True) for v in variants}) != len(variants):
        raise SweepError(f"variants has repeated entries: {list(variants)}")
