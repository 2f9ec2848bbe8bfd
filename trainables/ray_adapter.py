"""The Tune trainable: the only module under trainables/ that imports Ray.

``trainable(experiment, profile)`` is the one entry point, for the orchestrator's sweeps and for
your own Tune scripts alike::

    from ray import tune
    from trainables.ray_adapter import trainable

    tuner = tune.Tuner(
        trainable("mog", "quick"),
        param_space={"seed": tune.grid_search([0, 1]), "unroll_steps": tune.choice([0, 5, 10]),
                     "g_lr": tune.loguniform(1e-4, 1e-3)},
        tune_config=tune.TuneConfig(scheduler=ASHAScheduler(metric="modes", mode="max"), num_samples=4),
        run_config=tune.RunConfig(storage_path="./results", name="my-search"),
    )

Every key of a trial's config is an experiment config field (``python -m orchestrator list``
names them); ``seed`` and ``unroll_steps`` are fields too. ``seeds`` (a list) instead of ``seed``
trains those seeds packed into one model (``trainables.packed``, experiments with
``Experiment.packable``), each seed with its own rows, trial id, state and divergence status.
Results land in the Tune experiment's folder, in the sweep layout (``parquet/``, ``trial_state/``),
so ``python -m analysis report <storage>/<name>`` reads them like a CLI sweep's.

For every report: write the Parquet rows, save the trial's state, report to Tune, in that
order, so that rows for a step exist before the state that lets a retry skip it (see
trainables.results). Tune's own checkpoints are not used: why is in ``TrialStateFile``. A trial
whose state says it is finished (or diverged) returns at once, which is how a re-run sweep skips
what is done. A trial a Tune scheduler stops early has its last row marked ``stopped``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import tune
from ray.tune.trainable import wrap_function

from . import artifacts, experiments
from .results import ResultsWriter, TrialIdentity, TrialStateFile, trial_id
from .trial import PackedTrial, Trial

GRID_POINT = "grid_point"
"""A config key whose value is a dict of config fields, merged into the trial's own (``grid_config``)."""


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares (the trainable holds it; a trial's Tune config holds only its point)."""

    experiment: str
    profile: str
    sweep: str
    results_dir: str
    """The sweep's Parquet folder (local path or URI)."""
    state_dir: str
    """Where each trial keeps its resumable state."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Config fields set for every trial, torch_threads included."""
    artifacts: dict[str, Any] = field(default_factory=dict)
    """The sweep's published data and metric models (``trainables.artifacts`` manifest)."""


def grid_config(points: list[dict[str, Any]]) -> dict[str, Any]:
    """A Tune param_space running these grid points in this order (Tune orders a product of several
    ``grid_search`` axes by their names, not as given)."""
    return {GRID_POINT: tune.grid_search(points)}


def point_of(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's own config fields from its Tune config."""
    return {**config.get(GRID_POINT, {}), **{k: v for k, v in config.items() if k != GRID_POINT}}


def trial_id_of(config: dict[str, Any]) -> str:
    """A trial's id within its sweep, from its Tune config, e.g. ``seed=0,unroll_steps=10``."""
    point = point_of(config)
    axes = {k: v for k, v in point.items() if k not in ("seed", "seeds", "unroll_steps")}
    if "seeds" in point:  # a packed trial; each of its seeds keeps its own id in the rows
        return trial_id("+".join(map(str, point["seeds"])), point.get("unroll_steps"), axes, seed_key="seeds")
    return trial_id(point.get("seed"), point.get("unroll_steps"), axes)


def grid_axes(experiment: experiments.Experiment, point: dict[str, Any]) -> list[str]:
    """The Parquet axis columns of a trial: the experiment's, then the other fields its sweep varies."""
    varied = [k for k in point if k not in ("seed", "seeds", "unroll_steps", *experiment.axis_columns)]
    return [*experiment.axis_columns, *sorted(varied)]


def trainable(
    experiment: str,
    profile: str = "quick",
    *,
    overrides: dict[str, Any] | None = None,
    cpus_per_trial: int = 1,
    gpus_per_trial: float = 0.0,
    artifacts_manifest: dict[str, Any] | None = None,
):
    """A Tune trainable of one experiment and profile, with its resources set (see the module doc).

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
        storage = tune.get_context().get_storage()
        sweep_uri = _uri(storage.storage_filesystem, storage.experiment_fs_path)
        manifest = artifacts_manifest
        if manifest is None and refs:
            manifest = artifacts.read_manifest(sweep_uri) or artifacts.publish(
                sweep_uri, {name: (ray.get(ref), info) for name, (ref, info) in refs.items()}
            )
        settings = TrialSettings(
            experiment, profile, storage.experiment_dir_name, f"{sweep_uri}/parquet", f"{sweep_uri}/trial_state",
            shared, manifest or {},
        )  # fmt: skip
        train(settings, point_of(config))

    run.__name__ = f"unrolled_gan_{experiment}"
    return tune.with_resources(_stop_aware(run), {"cpu": cpus_per_trial, "gpu": gpus_per_trial})


def _uri(filesystem, path: str) -> str:
    """The URI our pyarrow helpers open for Tune's (filesystem, path) pair."""
    scheme = {"local": "", "s3": "s3://", "gcs": "gs://"}.get(filesystem.type_name)
    if scheme is None:
        raise ValueError(f"storage on a {filesystem.type_name} filesystem is not supported; use a local path or s3://")
    return f"{scheme}{path}"


def train(settings: TrialSettings, point: dict[str, Any]) -> None:
    """One trial of a sweep under Tune: its grid point's config, resumed from its own state if any."""
    artifacts.install(settings.artifacts)
    experiment = experiments.get(settings.experiment)
    # The trial's resources decide the device; torch.cuda.is_available() would also be
    # true for a CPU-only trial placed on a GPU node.
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    if "seeds" in point:
        return _train_packed(settings, experiment, device, point)
    cfg = experiment.config(settings.profile, {**settings.overrides, **point})
    identity = _identity(settings, experiment, cfg, point)
    state_file = TrialStateFile(settings.state_dir, identity.trial_id)
    state = state_file.load()
    if state is not None and Trial.finished_state(state, cfg):
        return  # its rows and final models are written; nothing to do
    trial = Trial(experiment, cfg, device)
    if state is not None:
        trial.load_state_dict(state)
    writer = _writer(settings, experiment, identity, cfg)
    live = _start_live()
    with live.recording():
        for report in trial.reports():
            if not live.write([(writer, report)], trial.elapsed_s, lambda: state_file.save(trial.state_dict())):
                return  # Tune is stopping this trial (see _LiveRows)
            # A diverged trial ends normally (Tune: terminated, not errored), so it is not retried.
            tune.report({"step": report.step, "iterations": cfg.iterations, "status": report.status, **report.metrics})


def _identity(settings: TrialSettings, experiment, cfg, point: dict[str, Any]) -> TrialIdentity:
    # The experiment's own axes always, and any other field this sweep varies: every grid
    # point gets its own trial id and its own column.
    return TrialIdentity(
        sweep=settings.sweep,
        tune_trial_id=tune.get_context().get_trial_id(),
        experiment=experiment.name,
        profile=settings.profile,
        seed=cfg.seed,
        unroll_steps=cfg.unroll_steps,
        second_order=cfg.second_order,
        axes={name: getattr(cfg, name) for name in grid_axes(experiment, point)},
        node_id=ray.get_runtime_context().get_node_id(),
    )


def _writer(settings: TrialSettings, experiment, identity: TrialIdentity, cfg) -> ResultsWriter:
    hashes = json.dumps(artifacts.hashes())
    return ResultsWriter(settings.results_dir, identity, list(experiment.metrics), cfg.to_json(), hashes)


def _train_packed(settings: TrialSettings, experiment, device: str, point: dict[str, Any]) -> None:
    """Several seeds of one grid point in one trial: every seed writes what its own trial would."""
    if not experiment.packable:
        raise ValueError(f"{experiment.name}'s models cannot be packed; run one seed per trial")
    rest = {k: v for k, v in point.items() if k != "seeds"}
    configs = [experiment.config(settings.profile, {**settings.overrides, **rest, "seed": s}) for s in point["seeds"]]
    identities = [_identity(settings, experiment, cfg, {**rest, "seed": cfg.seed}) for cfg in configs]
    state_files = [TrialStateFile(settings.state_dir, identity.trial_id) for identity in identities]
    states = [f.load() for f in state_files]
    if all(s is not None and Trial.finished_state(s, c) for s, c in zip(states, configs)):
        return
    trial = PackedTrial(experiment, configs, device)
    trial.load_state_dicts(states)  # or, if the seeds' states do not fit together, afresh
    writers = [_writer(settings, experiment, identity, cfg) for identity, cfg in zip(identities, configs)]
    live = _start_live()

    def save_states() -> None:
        for index, state_file in enumerate(state_files):
            state_file.save(trial.state_dict(index))

    with live.recording():
        for batch in trial.reports():
            if not live.write([(writers[index], report) for index, report in batch], trial.elapsed_s, save_states):
                return
            # Tune sees one trial: the step and the mean of each metric over the seeds that reported.
            reported = [report for _, report in batch]
            mean = (
                {k: sum(r.metrics[k] for r in reported) / len(reported) for k in reported[0].metrics} if batch else {}
            )
            status = "finished" if all(r.status != "running" for r in reported) else "running"
            tune.report(
                {"step": trial.trainer.iteration, "iterations": configs[0].iterations, "status": status, **mean}
            )


class _LiveRows:
    """The rows the trial in this worker wrote last, so that however Tune stops it, they say so.

    Tune stops a trial (a scheduler's decision, a stopper) by raising SystemExit in the trial's next
    ``tune.report()``, or, when the trial is still training towards that report, by ending the
    worker right after ``Trainable.cleanup``, which does not wait for the training thread. A
    stopped trial's last rows must read ``stopped`` either way, or analysis would take an early
    step for a finished one; so the cleanup marks them too (``_StopAware``), and after that the
    training thread writes nothing more. A lock keeps the two threads from interleaving writes.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.stopping = False
        self.last: list[tuple[ResultsWriter, Any, dict, float]] = []

    def write(self, rows, elapsed_s: float, save_state) -> bool:
        """Write each (writer, report) row, then the state; False once the trial is being stopped."""
        with self.lock:
            if self.stopping:
                return False
            self.last = []
            for writer, report in rows:
                samples = {kind: values.numpy() for kind, values in report.samples.items()}
                writer.write(report.step, elapsed_s, report.metrics, samples, report.status)
                self.last.append((writer, report, samples, elapsed_s))
            save_state()
            return True

    def mark_stopped(self) -> None:
        with self.lock:
            self.stopping = True
            for writer, report, samples, elapsed_s in self.last:
                # A scheduler also "stops" a trial at its last report (ASHA at max_t): that one finished.
                if report.status == "running":
                    writer.write(report.step, elapsed_s, report.metrics, samples, "stopped")
            self.last = []

    @contextlib.contextmanager
    def recording(self):
        try:
            yield
        except SystemExit:
            self.mark_stopped()
            raise
        except BaseException:
            with self.lock:  # a crash is not a stop: its rows stay as they are, for the retry
                self.last = []
            raise


_live: _LiveRows | None = None


def _start_live() -> _LiveRows:
    global _live
    _live = _LiveRows()
    return _live


def _stop_aware(function):
    """The function trainable, with a cleanup that marks a stopped trial's last rows (``_LiveRows``)."""

    class StopAware(wrap_function(function)):
        def cleanup(self):
            if _live is not None:
                _live.mark_stopped()
            super().cleanup()

    StopAware.__name__ = function.__name__
    return StopAware
