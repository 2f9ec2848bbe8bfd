"""The Tune function trainable: the only module under trainables/ that imports Ray.

Resume from the trial's state file if there is one, then for every report: write the
Parquet rows, save the state, report to Tune, in that order, so that rows for a step
exist before the state that lets a retry skip it (see trainables.results). Tune's own
checkpoints are not used: why is in ``TrialStateFile``. A trial whose state says it is
finished returns at once, which is how a re-run sweep skips what is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import tune

from . import artifacts, experiments
from .results import ResultsWriter, TrialIdentity, TrialStateFile, trial_id
from .trial import Trial


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares, and how it travels in a Tune config (both directions).

    A trial's Tune config is these settings' keys plus its grid point: ``seed``,
    ``unroll_steps`` and any experiment config field (a sweep axis or a search dimension).
    """

    experiment: str
    profile: str
    sweep: str
    results_dir: str
    """The sweep's Parquet folder (local path or URI)."""
    state_dir: str
    """Where each trial keeps its resumable state."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Config fields set for every trial (``--set``), torch_threads included."""
    artifacts: dict[str, Any] = field(default_factory=dict)
    """The sweep's published data and metric models (``trainables.artifacts`` manifest)."""

    KEYS = ("experiment", "profile", "sweep", "results_dir", "state_dir", "overrides", "artifacts")
    GRID_POINT = "grid_point"
    """A key whose value is a dict of config fields, merged into the trial's own (see ``grid_points``)."""

    def tune_config(self, grid: dict[str, Any]) -> dict[str, Any]:
        """Encode: a Tune param_space of these settings plus `grid` (values or Tune search spaces)."""
        clash = sorted(set(grid) & set(self.KEYS))
        if clash:
            raise ValueError(f"{', '.join(clash)} cannot be a grid axis")
        return {**grid, **{key: getattr(self, key) for key in self.KEYS}}

    def grid_points(self, points: list[dict[str, Any]]) -> dict[str, Any]:
        """Encode a grid as its list of points, which Tune runs in that order (it orders a product of
        several ``grid_search`` axes by their names, not as given)."""
        return self.tune_config({self.GRID_POINT: tune.grid_search(points)})

    @classmethod
    def from_tune_config(cls, config: dict[str, Any]) -> tuple[TrialSettings, dict[str, Any]]:
        """Decode: the settings, and this trial's config fields (overrides, then its grid point)."""
        settings = cls(**{key: config[key] for key in cls.KEYS})
        return settings, {**settings.overrides, **point_of(config)}


def point_of(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's own config fields in its Tune config: everything but the shared settings."""
    point = {k: v for k, v in config.items() if k not in (*TrialSettings.KEYS, TrialSettings.GRID_POINT)}
    return {**config.get(TrialSettings.GRID_POINT, {}), **point}


def trial_id_of(config: dict[str, Any]) -> str:
    """A trial's id within its sweep, from its Tune config, e.g. ``seed=0,unroll_steps=10``."""
    point = point_of(config)
    axes = {k: v for k, v in point.items() if k not in ("seed", "unroll_steps")}
    return trial_id(point.get("seed"), point.get("unroll_steps"), axes)


def grid_axes(experiment: experiments.Experiment, config: dict[str, Any]) -> list[str]:
    """The Parquet axis columns of a trial: the experiment's, then the other fields its sweep varies."""
    varied = [k for k in point_of(config) if k not in ("seed", "unroll_steps", *experiment.axis_columns)]
    return [*experiment.axis_columns, *sorted(varied)]


def train_trial(config: dict[str, Any]) -> None:
    settings, values = TrialSettings.from_tune_config(config)
    artifacts.install(settings.artifacts)
    experiment = experiments.get(settings.experiment)
    cfg = experiment.config(settings.profile, values)
    identity = TrialIdentity(
        sweep=settings.sweep,
        tune_trial_id=tune.get_context().get_trial_id(),
        experiment=experiment.name,
        profile=settings.profile,
        seed=cfg.seed,
        unroll_steps=cfg.unroll_steps,
        second_order=cfg.second_order,
        # The experiment's own axes always, and any other field this sweep varies: every grid
        # point gets its own trial id and its own column.
        axes={name: getattr(cfg, name) for name in grid_axes(experiment, config)},
        node_id=ray.get_runtime_context().get_node_id(),
    )
    # The trial's resources decide the device; torch.cuda.is_available() would also be
    # true for a CPU-only trial placed on a GPU node.
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    state_file = TrialStateFile(settings.state_dir, identity.trial_id)
    state = state_file.load(map_location=device)
    if state is not None and Trial.finished_state(state, cfg):
        return  # its rows and final models are written; nothing to do
    trial = Trial(experiment, cfg, device)
    if state is not None:
        trial.load_state_dict(state)
    writer = ResultsWriter(
        settings.results_dir, identity, list(experiment.metrics), cfg.to_json(), json.dumps(artifacts.hashes())
    )
    for report in trial.reports():
        writer.write(
            report.step,
            trial.elapsed_s,
            report.metrics,
            {kind: samples.numpy() for kind, samples in report.samples.items()},
            report.status,
        )
        state_file.save(trial.state_dict())
        # A diverged trial ends normally (Tune: terminated, not errored), so it is not retried.
        tune.report({"step": report.step, "iterations": cfg.iterations, "status": report.status, **report.metrics})
