"""The Tune function trainable: the only module under trainables/ that imports Ray.

Restore from Tune's checkpoint if there is one, then for every report: write the
Parquet rows, then checkpoint and report to Tune, in that order, so that rows for
a step exist before the checkpoint that lets a retry skip it (see trainables.results).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import ray
import torch
from ray import tune

from . import experiments
from .results import ResultsWriter, TrialIdentity
from .trial import Trial

STATE_FILE = "trial_state.pt"

# Keys the orchestrator puts in every trial's Tune config beside the experiment's own fields.
SWEEP_KEYS = ("experiment", "profile", "sweep", "results_dir", "overrides")


@dataclass(frozen=True)
class TrialSettings:
    experiment: str
    profile: str
    sweep: str
    results_dir: str
    values: dict[str, Any]
    """Experiment config fields: --set overrides plus this trial's grid point (seed, unroll_steps, axes)."""

    @classmethod
    def from_tune_config(cls, config: dict[str, Any]) -> "TrialSettings":
        grid_point = {k: v for k, v in config.items() if k not in SWEEP_KEYS}
        return cls(experiment=config["experiment"], profile=config["profile"], sweep=config["sweep"],
                   results_dir=config["results_dir"], values={**config.get("overrides", {}), **grid_point})


def train_trial(config: dict[str, Any]) -> None:
    settings = TrialSettings.from_tune_config(config)
    experiment = experiments.get(settings.experiment)
    cfg = experiment.config(settings.profile, settings.values)
    # The trial's resources decide the device; torch.cuda.is_available() would also be
    # true for a CPU-only trial placed on a GPU node.
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    trial = Trial(experiment, cfg, device)

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trial.load_state_dict(torch.load(os.path.join(directory, STATE_FILE), map_location=device,
                                             weights_only=False))

    identity = TrialIdentity(
        sweep=settings.sweep, tune_trial_id=tune.get_context().get_trial_id(), experiment=experiment.name,
        profile=settings.profile, seed=cfg.seed, unroll_steps=cfg.unroll_steps, second_order=cfg.second_order,
        axes={name: getattr(cfg, name) for name in experiment.axis_columns},
        node_id=ray.get_runtime_context().get_node_id(),
    )
    writer = ResultsWriter(settings.results_dir, identity, list(experiment.metrics), cfg.to_json())
    for report in trial.reports():
        writer.write(report.step, trial.elapsed_s, report.metrics,
                     {kind: samples.numpy() for kind, samples in report.samples.items()})
        with tempfile.TemporaryDirectory() as directory:
            torch.save(trial.state_dict(), os.path.join(directory, STATE_FILE))
            tune.report({"step": report.step, "iterations": cfg.iterations, **report.metrics},
                        checkpoint=tune.Checkpoint.from_directory(directory))
