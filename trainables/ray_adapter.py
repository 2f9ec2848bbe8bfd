"""The Tune trainable: the only module under trainables/ that imports Ray.

``trainable(experiment, profile)`` is the one entry point, for the orchestrator's sweeps and for your own
Tune scripts alike (the README's "From your own Tune script" shows one). Every key of a trial's config is
an experiment config field; ``seeds`` (a list) in place of ``seed`` packs those seeds into one trial.
Results land in the Tune experiment's folder in the sweep layout (``trainables.layout``), so
``python -m analysis report <storage>/<name>`` reads them like a CLI sweep's.

What a trial does is ``trainables.protocol.run_trial``; this module is the Tune glue around it. Tune's
own checkpoints are not used by default (why: ``trainables.trial_state.TrialStateFile``); with
``tune_checkpoints=True`` every report carries one, which Tune's checkpoint schedulers (Population Based
Training, PB2, pausing HyperBand) need, and a trial is a member of a population (``trainables.lineage``,
``trainables.protocol.run_member``). ``population_based_training`` and ``pb2`` build those schedulers after
checking that they mutate only what a member can take.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import ray
import torch
from ray import tune
from ray.tune.trainable import wrap_function

from . import experiments
from .artifacts import Assets, publish, read_manifest
from .errors import ConfigError
from .grid_point import TUNE_KEY, GridPoint
from .layout import SweepLayout
from .lineage import check_mutations
from .protocol import StopMarker, TrialRequest, run_member, run_trial

CHECKPOINT_FILE = "member.pt"
"""The one file of a report's Tune checkpoint: the trial's state with its lineage (``protocol.run_member``)."""


def grid_config(points: list[GridPoint]) -> dict[str, Any]:
    """A Tune param_space running these grid points in this order (Tune orders a product of several
    ``grid_search`` axes by their names, not as given)."""
    return {TUNE_KEY: tune.grid_search([point.to_tune() for point in points])}


def trial_id_of(config: dict[str, Any]) -> str:
    """An orchestrator trial's id within its sweep, from its Tune config, e.g. ``seed=0,unroll_steps=10``."""
    return GridPoint.from_tune(config).trial_id


def trainable(
    experiment: str,
    profile: str = "quick",
    *,
    overrides: dict[str, Any] | None = None,
    cpus_per_trial: int = 1,
    gpus_per_trial: float = 0.0,
    artifacts_manifest: dict[str, Any] | None = None,
    tune_checkpoints: bool = False,
):
    """A Tune trainable of one experiment and profile, with its resources set (see the module doc).

    `tune_checkpoints`: report a Tune checkpoint with every result, for Tune's checkpoint schedulers; each trial
    then trains one seed and its rows are its generations' (``trainables.lineage``). Off: nothing changes.

    `overrides` sets config fields for every trial (a trial's own config wins). The experiment's
    data and metric models (MNIST, the labelling classifier) are prepared here, once, in the
    driver, and reach every trial through Ray's object store, which publishes them in the
    experiment's storage with their hashes; the orchestrator, which publishes them itself, passes
    its `artifacts_manifest` instead.
    """
    exp = experiments.get(experiment)
    base = exp.config(profile, overrides)  # a bad profile or field fails here, in the driver
    shared = {**(overrides or {}), "torch_threads": cpus_per_trial}
    refs = None
    if artifacts_manifest is None and exp.prepare is not None:
        refs = {name: (ray.put(data), info) for name, (data, info) in exp.prepare(base).items()}

    def run(config: dict[str, Any]) -> None:
        worker = worker_state().begin_trial("paused" if tune_checkpoints else "stopped")
        context = tune.get_context()
        storage = context.get_storage()
        layout = SweepLayout(_uri(storage.storage_filesystem, storage.experiment_fs_path))
        manifest = artifacts_manifest
        if manifest is None and refs:
            manifest = read_manifest(layout.root) or publish(
                layout.root, {name: (ray.get(ref), info) for name, (ref, info) in refs.items()}
            )
        if TUNE_KEY in config:
            point = GridPoint.from_tune(config)
        else:  # a Tune script's own fields: the experiment's axes and K take the resolved config's values
            resolved = exp.config(profile, {**shared, **{k: v for k, v in config.items() if k != "seeds"}})
            point = GridPoint.from_tune(config, exp.axis_columns, resolved.to_dict())
        request = TrialRequest(
            experiment, profile, storage.experiment_dir_name, layout, point, shared,
            worker.assets(manifest or {}), ray.get_runtime_context().get_node_id(), context.get_trial_id(),
        )  # fmt: skip
        # The trial's resources decide the device; torch.cuda.is_available() would also be true for a
        # CPU-only trial placed on a GPU node.
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        if tune_checkpoints:
            run_member(request, device, _report_with_checkpoint, _checkpoint_state(), worker.marker)
        else:
            run_trial(request, device, tune.report, worker.marker)

    run.__name__ = f"unrolled_gan_{experiment}"
    return tune.with_resources(_stop_aware(run), {"cpu": cpus_per_trial, "gpu": gpus_per_trial})


def _checkpoint_state() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location="cpu", weights_only=False)


def _report_with_checkpoint(metrics: dict[str, Any], state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, os.path.join(folder, CHECKPOINT_FILE))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def population_based_training(**kwargs):
    """``tune.schedulers.PopulationBasedTraining(**kwargs)``, refused in one line if its ``hyperparam_mutations``
    name a field a member cannot change (``trainables.lineage.MUTABLE_FIELDS``). Use it with
    ``trainable(..., tune_checkpoints=True)``."""
    from ray.tune.schedulers import PopulationBasedTraining

    check_mutations(kwargs.get("hyperparam_mutations") or {})
    return PopulationBasedTraining(**kwargs)


def pb2(**kwargs):
    """``tune.schedulers.pb2.PB2(**kwargs)`` (needs scikit-learn: the ``pb2`` extra), refused in one line if its
    ``hyperparam_bounds`` name a field a member cannot change, or K (PB2's bounds are continuous)."""
    from ray.tune.schedulers.pb2 import PB2

    bounds = kwargs.get("hyperparam_bounds") or {}
    check_mutations(bounds)
    if "unroll_steps" in bounds:
        raise ConfigError("PB2 searches continuous bounds: mutate unroll_steps (a list of K) with PBT instead")
    return PB2(**kwargs)


def _uri(filesystem, path: str) -> str:
    """The URI our pyarrow helpers open for Tune's (filesystem, path) pair."""
    scheme = {"local": "", "s3": "s3://", "gcs": "gs://"}.get(filesystem.type_name)
    if scheme is None:
        raise ValueError(f"storage on a {filesystem.type_name} filesystem is not supported; use a local path or s3://")
    return f"{scheme}{path}"


class _WorkerState:
    """A Tune worker process's: its current trial's StopMarker and the sweep's decoded artifacts (kept when Tune
    reuses the worker for the next trial). A worker runs one trial at a time."""

    def __init__(self):
        self.marker, self._assets = StopMarker(), None

    def begin_trial(self, stop_status: str = "stopped") -> _WorkerState:
        self.marker = StopMarker(stop_status)  # a reused worker's previous trial is over
        return self

    def assets(self, manifest: dict[str, Any]) -> Assets:
        if self._assets is None or self._assets.manifest != manifest:
            self._assets = Assets(manifest)
        return self._assets


_WORKER = _WorkerState()


def worker_state() -> _WorkerState:
    """This process's worker state. Called, never captured: Ray pickles the trainable's closures by value, and
    this module's functions by reference, so each worker process keeps its own."""
    return _WORKER


def _stop_aware(function):
    """The function trainable, with a cleanup that marks a stopped trial's last rows (``StopMarker``).

    ``cleanup`` is the public hook Tune calls when it ends a trial's worker; the trial function runs in a thread
    of that same process, so the two meet in the process's ``worker_state()``. ``wrap_function`` is how Tune itself
    turns a function into the class whose ``cleanup`` can be overridden.
    """

    class StopAware(wrap_function(function)):
        def cleanup(self):
            worker_state().marker.mark_stopped()
            super().cleanup()

    StopAware.__name__ = function.__name__
    return StopAware
