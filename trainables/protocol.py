"""One sweep trial's protocol, start to finish, without Ray.

For every report of a trial (or of seeds packed into one): write its Parquet rows, save its state,
then hand a summary to `report` (``tune.report`` under Tune), in that order, so that rows for a step
exist before the state that lets a retry skip it (``trainables.results``). A trial whose every state
says it is finished (or diverged) returns at once: that is how a re-run sweep skips what is done. So
does one whose state file is gone but whose last row, written by the same config, says finished:
a sweep's rows alone (copied elsewhere, its trial states not) keep its finished trials done.
The Ray adapter (``trainables.ray_adapter``) is the Tune glue around ``run_trial``; the tests drive
it directly.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from . import experiments
from .artifacts import Assets
from .errors import ConfigError
from .grid_point import GridPoint
from .layout import SweepLayout
from .lineage import MUTABLE_FIELDS, Lineage, changed_fields, refuse_immutable
from .results import SUPERSEDED, ResultsWriter, TrialIdentity
from .trial import PackedTrial, Report, Trial
from .trial_state import TrialStateFile


@dataclass(frozen=True)
class TrialRequest:
    """What one sweep trial must run: a grid point (one seed, or several packed) of a sweep's experiment."""

    experiment: str
    profile: str
    sweep: str
    layout: SweepLayout
    point: GridPoint
    overrides: dict[str, Any] = field(default_factory=dict)
    """Config fields set for every trial of the sweep (a point's own value wins)."""
    assets: Assets = field(default_factory=Assets)
    node_id: str = ""
    tune_trial_id: str = ""


class StopMarker:
    """The rows a trial wrote last, so that however Tune stops it, they say so.

    Tune stops a trial (a scheduler's decision, a stopper) by raising SystemExit in the trial's next
    report, or, when the trial is still training towards that report, by ending the worker right after
    the trainable's cleanup, which does not wait for the training thread. A stopped trial's last rows
    must read ``stopped`` either way, or analysis would take an early step for a finished one; so the
    cleanup marks them too (``mark_stopped``), and after that the training thread writes nothing more.
    A lock keeps the two threads from interleaving writes.
    """

    def __init__(self, stop_status: str = "stopped"):
        self.lock = threading.Lock()
        self.stopping = False
        self.last: list[tuple[ResultsWriter, Report, dict, float]] = []
        # With Tune checkpoints a stop may be a pause that Tune resumes from the report's checkpoint: "paused".
        self.stop_status = stop_status

    def write(self, rows: list[tuple[ResultsWriter, Report]], elapsed_s: float, save_state: Callable[[], None]) -> bool:
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
                    writer.write(report.step, elapsed_s, report.metrics, samples, self.stop_status)
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


def summary(batch: list[tuple[int, Report]], step: int, iterations: int) -> dict[str, Any]:
    """What a scheduler sees of one report: the step, and each metric's mean over the seeds that reported."""
    reported = [report for _, report in batch]
    if len(reported) == 1:
        status = reported[0].status
    else:
        status = "finished" if reported and all(r.status != "running" for r in reported) else "running"
    mean = {k: sum(r.metrics[k] for r in reported) / len(reported) for k in reported[0].metrics} if reported else {}
    return {"step": step, "iterations": iterations, "status": status, **mean}


def run_trial(
    request: TrialRequest,
    device: torch.device | str,
    report: Callable[[dict[str, Any]], None],
    marker: StopMarker | None = None,
) -> None:
    """Run (or resume, or skip as done) one sweep trial, writing its rows and states (module doc)."""
    experiment = experiments.get(request.experiment)
    point = request.point
    configs = [experiment.config(request.profile, {**request.overrides, **point.fields(seed)}) for seed in point.seeds]
    identities = [
        TrialIdentity(
            sweep=request.sweep,
            experiment=experiment.name,
            profile=request.profile,
            point=seed_point,
            second_order=cfg.second_order,
            node_id=request.node_id,
            tune_trial_id=request.tune_trial_id,
        )  # fmt: skip
        for seed_point, cfg in zip(point.seed_points(), configs)
    ]
    state_files = [TrialStateFile(request.layout, identity.trial_id) for identity in identities]
    states = [state_file.load() for state_file in state_files]
    hashes = json.dumps(request.assets.hashes())
    writers = [
        ResultsWriter(request.layout.parquet, identity, list(experiment.metrics), cfg.to_json(), hashes)
        for identity, cfg in zip(identities, configs)
    ]
    if all(
        Trial.finished_state(state, cfg) if state is not None else writer.finished_at(cfg.iterations)
        for state, cfg, writer in zip(states, configs, writers)
    ):
        return  # its rows (and, where its state is kept, its final models) are written; nothing to do
    if point.packed:
        trial = PackedTrial(experiment, configs, device, request.assets)
    else:
        trial = Trial(experiment, configs[0], device, request.assets)
    trial.load_states(states)  # packed seeds whose states do not fit together start afresh
    marker = marker or StopMarker()

    def save_states() -> None:
        for index, state_file in enumerate(state_files):
            state_file.save(trial.state_dict(index))

    with marker.recording():
        for batch in trial.report_batches():
            if not marker.write([(writers[index], r) for index, r in batch], trial.elapsed_s, save_states):
                return  # Tune is stopping this trial (StopMarker)
            # A diverged trial ends normally (Tune: terminated, not errored), so it is not retried.
            report(summary(batch, trial.trainer.iteration, configs[0].iterations))


CheckpointReport = Callable[[dict[str, Any], dict[str, Any]], None]
"""(summary, checkpoint) -> None: ``tune.report`` with the checkpoint saved beside it, under Tune."""


def run_member(
    request: TrialRequest,
    device: torch.device | str,
    report: CheckpointReport,
    checkpoint: dict[str, Any] | None = None,
    marker: StopMarker | None = None,
) -> None:
    """One member of a checkpoint scheduler's population (``lineage``): run, resume, or continue from a donor.

    `checkpoint` is what Tune hands the trial (``tune.get_checkpoint``), a dict from an earlier `report` (the
    trial's ``state_dict`` with ``lineage`` and ``step``):
    this member's own (a pause or a retry: it resumes) or another member's (an exploit: this member's next
    generation starts from that state, with this config's mutable fields). Without one, the member's own
    state file (saved at every report, as every trial's) resumes it after a crash or a pruned checkpoint.
    Each report writes the generation's rows, saves the state file, then reports with the checkpoint.
    """
    if request.point.packed:
        raise ConfigError("Tune checkpoints follow one model per trial: run checkpoint schedulers without seed packing")
    experiment = experiments.get(request.experiment)
    member = request.tune_trial_id
    config = experiment.config(request.profile, {**request.overrides, **request.point.fields(request.point.seed)})
    state_file = TrialStateFile(request.layout, f"member={member}")
    own = state_file.load()
    own_lineage = Lineage.from_dict(own["lineage"]) if own else None
    start, lineage, superseded = None, own_lineage or Lineage(member), None
    donated = checkpoint is not None and checkpoint["lineage"]["member"] != member
    if donated and own is not None and min(own["step"], checkpoint["step"]) >= config.iterations:
        # A scheduler that decides at every result (synchronous PBT at the last report) may exploit after the end:
        # with both at the end there is nothing left to train, so a new generation would have no rows and only
        # supersede this member's finished ones (its config is now the donor's, seed included). It has ended.
        return
    if donated:
        donor = Lineage.from_dict(checkpoint["lineage"])
        lineage = (own_lineage or Lineage(member)).successor(member, donor, checkpoint["step"])
        start, superseded = checkpoint, own
    elif checkpoint is not None and (own is None or checkpoint["step"] >= own["step"]):
        start, lineage = checkpoint, Lineage.from_dict(checkpoint["lineage"])
    elif own is not None:
        start = own
    if start is not None:
        refuse_immutable(changed_fields(start["config"], config.to_dict()), "the scheduler changed")
    identity = TrialIdentity(
        request.sweep, experiment.name, request.profile, request.point, config.second_order, request.node_id,
        member, lineage=lineage,
    )  # fmt: skip
    hashes = json.dumps(request.assets.hashes())
    writer = ResultsWriter(request.layout.parquet, identity, list(experiment.metrics), config.to_json(), hashes)
    if superseded is not None:  # the generation the exploit replaces: its last row is superseded, not an end
        old = TrialIdentity(
            request.sweep, experiment.name, request.profile, request.point, config.second_order,
            lineage=Lineage.from_dict(superseded["lineage"]),
        )  # fmt: skip
        ResultsWriter(request.layout.parquet, old, list(experiment.metrics), "{}").mark(superseded["step"], SUPERSEDED)
    trial = Trial(experiment, config, device, request.assets)
    if start is not None:
        trial.load_state_dict(start, mutable=MUTABLE_FIELDS)
        if Trial.finished_state(trial.state_dict(), config):
            return
    marker = marker or StopMarker("paused")

    saved: dict[str, Any] = {}

    def save_state() -> None:
        # The trial's state in its own format, with who wrote it: the state file and Tune's checkpoint alike.
        saved.update(trial.state_dict(), lineage=lineage.to_dict(), step=trial.trainer.iteration)
        state_file.save(saved)

    with marker.recording():
        for batch in trial.report_batches():
            if not marker.write([(writer, r) for _, r in batch], trial.elapsed_s, save_state):
                return
            report(summary(batch, trial.trainer.iteration, config.iterations), dict(saved))
