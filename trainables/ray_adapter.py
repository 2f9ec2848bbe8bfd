"""The Tune function trainable: the only module under trainables/ that imports Ray.

Resume from the trial's state file if there is one, then for every report: write the
Parquet rows, save the state, report to Tune, in that order, so that rows for a step
exist before the state that lets a retry skip it (see trainables.results). Tune's own
checkpoints are not used: why is in ``TrialStateFile``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray import tune

from . import experiments
from .results import ResultsWriter, TrialIdentity, TrialStateFile, trial_key
from .trial import Trial

# Keys the orchestrator puts in every trial's Tune config beside the experiment's own fields.
SWEEP_KEYS = ("experiment", "profile", "sweep", "results_dir", "state_dir", "overrides")


def grid_point(config: dict[str, Any]) -> str:
    """A trial's Tune config as its name in the sweep, e.g. ``seed=0,unroll_steps=10``."""
    axes = {k: v for k, v in config.items() if k not in (*SWEEP_KEYS, "seed", "unroll_steps")}
    return trial_key(config.get("seed"), config.get("unroll_steps"), axes)


@dataclass(frozen=True)
class TrialSettings:
    experiment: str
    profile: str
    sweep: str
    results_dir: str
    state_dir: str
    values: dict[str, Any]
    """Experiment config fields: --set overrides plus this trial's grid point (seed, unroll_steps, axes)."""

    @classmethod
    def from_tune_config(cls, config: dict[str, Any]) -> "TrialSettings":
        point = {k: v for k, v in config.items() if k not in SWEEP_KEYS}
        return cls(experiment=config["experiment"], profile=config["profile"], sweep=config["sweep"],
                   results_dir=config["results_dir"], state_dir=config["state_dir"],
                   values={**config.get("overrides", {}), **point})


def train_trial(config: dict[str, Any]) -> None:
    settings = TrialSettings.from_tune_config(config)
    experiment = experiments.get(settings.experiment)
    cfg = experiment.config(settings.profile, settings.values)
    # The trial's resources decide the device; torch.cuda.is_available() would also be
    # true for a CPU-only trial placed on a GPU node.
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    trial = Trial(experiment, cfg, device)

    identity = TrialIdentity(
        sweep=settings.sweep, tune_trial_id=tune.get_context().get_trial_id(), experiment=experiment.name,
        profile=settings.profile, seed=cfg.seed, unroll_steps=cfg.unroll_steps, second_order=cfg.second_order,
        axes={name: getattr(cfg, name) for name in experiment.axis_columns},
        node_id=ray.get_runtime_context().get_node_id(),
    )
    state_file = TrialStateFile(settings.state_dir, identity.trial_id)
    state = state_file.load(map_location=device)
    if state is not None:
        trial.load_state_dict(state)
    writer = ResultsWriter(settings.results_dir, identity, list(experiment.metrics), cfg.to_json())
    for report in trial.reports():
        writer.write(report.step, trial.elapsed_s, report.metrics,
                     {kind: samples.numpy() for kind, samples in report.samples.items()})
        state_file.save(trial.state_dict())
        tune.report({"step": report.step, "iterations": cfg.iterations, **report.metrics})
