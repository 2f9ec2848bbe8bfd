"""Where a sweep stands, read from its storage alone (no Ray): `python -m orchestrator status PATH`.

PATH is a sweep folder (``<storage>/<name>``: its grid in ``sweep.json``, its rows in Parquet) or a
storage folder, whose sweeps are then listed one line each.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

import pyarrow.fs as pafs

from trainables.layout import SweepLayout
from trainables.results import ResultsError, final_rows, load_metrics, row_file
from trainables.storage import filesystem_and_path, read_file

from .lock import holder, is_stale
from .preflight import SweepError, storage_uri


@dataclass
class SweepStatus:
    name: str
    path: str
    experiment: str
    profile: str
    grid_trials: int
    """Trials in the sweep's grid (0 when its grid is not on record)."""
    counts: dict[str, int]
    """Trials by the status of their last row (finished, running, stopped, diverged), plus 'not started'."""
    driver: str
    """'running on HOST (pid N) since ...', 'none', or 'stale lock (...)'."""
    trials: list[dict] = field(default_factory=list)
    """Per trial with rows: trial_id, status, step, iterations; seconds_per_iteration, its own training time per
    iteration over its last report interval (``time_s``: evaluation excluded; None with one row). While running
    also: wall_seconds_per_iteration over the same interval, from when its two rows were written (evaluation and
    machine sharing included), seconds_left at the wall rate (the training rate where there is none),
    seconds_since_report, and a note: '' while it reports on time, else why it may not be running."""


def _grid_size(grid: dict) -> int:
    """Trials in a grid record: counted, not rebuilt, so a record whose experiment has since changed still counts."""
    sizes = [len(grid["seeds"]), len(grid["unroll_steps"]), *(len(v) for v in grid.get("axes", {}).values())]
    return math.prod(sizes) * max(1, len(grid.get("variants", ())))


def _driver(record: dict | None) -> str:
    if record is None:
        return "none"
    if not record:
        return "unreadable lock"
    if is_stale(record):
        return f"stale lock: a driver on {record.get('host')} (pid {record.get('pid')}) is gone"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started_at", 0)))
    return f"running on {record.get('host')} (pid {record.get('pid')}) since {since}"


def _seconds_per_iteration(runs: dict) -> dict[str, float]:
    """Each trial's own training seconds per iteration over its last two rows (``time_s`` counts its own time
    across resumes, so a pause between sessions does not inflate it); trials with one row are left out."""
    rates = {}
    for trial_id, run in runs.items():
        if len(run) >= 2:
            (step0, time0), (step1, time1) = run[["step", "time_s"]].iloc[-2:].itertuples(index=False)
            if step1 > step0:
                rates[trial_id] = (time1 - time0) / (step1 - step0)
    return rates


def _written_at(parquet: str, experiment: str, trial_id: str, steps: list[int]) -> list[float | None]:
    """When each of a trial's rows was written (its file's modification time, seconds since the epoch)."""
    fs, root = filesystem_and_path(parquet)
    infos = fs.get_file_info([row_file(root, "metrics", experiment, trial_id, step) for step in steps])
    return [info.mtime.timestamp() if info.mtime is not None else None for info in infos]


def _running_trial(
    parquet: str, run, iterations: int, training_rate: float | None, driver_gone: bool, driver_since: float | None
) -> dict:
    """The wall-clock side of a trial whose last row says running: its rate, time left, and whether it reports.
    A driver started after the trial's last row (a resumed sweep) restarts the wait for its next report."""
    last = run.iloc[-1]
    steps = [int(s) for s in run["step"].iloc[-2:]]
    times = _written_at(parquet, str(last["experiment"]), str(last["trial_id"]), steps)
    wall_rate = None
    if len(steps) == 2 and None not in times and steps[1] > steps[0]:
        wall_rate = (times[1] - times[0]) / (steps[1] - steps[0])
        # Rows copied or checked out carry the copy's times; the wall is never faster than the training it held.
        if wall_rate <= 0 or (training_rate is not None and wall_rate < training_rate):
            wall_rate = None
    rate = wall_rate or training_rate
    waiting_from = max((t for t in (times[-1], driver_since) if t is not None), default=None)
    since = time.time() - waiting_from if waiting_from is not None else None
    note = ""
    if driver_gone:
        note = "not running: the sweep's driver is gone; re-run its command to train on from this row"
    elif wall_rate and since is not None and since > 2 * wall_rate * (steps[1] - steps[0]) + 300:
        # Ray can lose a trial's worker (a node gone, a process held too long) while the driver goes on; the
        # trial's rows then simply stop. Twice its usual interval, plus slack for a slow evaluation, says so.
        note = (
            f"overdue: no report for {_duration(since)} (one every ~{_duration(wall_rate * (steps[1] - steps[0]))}); "
            "its worker may be lost or its driver stopped; the next run of the sweep's command trains it on from here"
        )
    left = rate * (iterations - int(last["step"])) if rate is not None else None
    if left is not None and wall_rate and since is not None:
        left = max(0.0, left - since)  # from now, not from its last row
    return {
        "wall_seconds_per_iteration": wall_rate,
        "seconds_left": left,
        "seconds_since_report": since,
        "note": note,
    }


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def is_sweep(path: str) -> bool:
    layout = SweepLayout(path)
    fs, _ = filesystem_and_path(path)
    found = (fs.get_file_info(filesystem_and_path(p)[1]).type for p in (layout.spec_file, layout.parquet))
    return any(kind != pafs.FileType.NotFound for kind in found)


def sweep_status(path: str) -> SweepStatus:
    layout = SweepLayout(path)
    data = read_file(*filesystem_and_path(layout.spec_file))
    try:
        grid = json.loads(data)["grid"] if data is not None else {}
    except (ValueError, KeyError):
        raise SweepError(f"{layout.spec_file} is corrupt") from None
    name = layout.name
    try:
        metrics = load_metrics(path)
    except ResultsError:
        metrics = None
    trials, counts = [], {"finished": 0, "running": 0, "stopped": 0, "diverged": 0}
    record = holder(path)
    driver = _driver(record)
    gone = bool(record) and is_stale(record)
    driver_since = record.get("started_at") if record and not gone else None
    if metrics is not None:
        runs = dict(iter(metrics.sort_values("step").groupby("trial_id")))  # each trial's rows, in step order
        rates = _seconds_per_iteration(runs)
        for row in final_rows(metrics, include_ended_early=True).itertuples():
            iterations = json.loads(row.config_json).get("iterations")
            rate = rates.get(row.trial_id)
            trial = {"trial_id": row.trial_id, "status": row.status, "step": int(row.step),
                     "iterations": iterations, "seconds_per_iteration": rate, "seconds_left": None}  # fmt: skip
            if row.status == "running":
                # A Tune script of one's own holds no lock, so only a lock left behind says no driver runs.
                side = _running_trial(layout.parquet, runs[row.trial_id], iterations, rate, gone, driver_since)
                trial.update(side)
            trials.append(trial)
            counts[row.status] = counts.get(row.status, 0) + 1
    grid_trials = _grid_size(grid) if grid else 0
    counts["not started"] = max(0, grid_trials - len(trials))
    experiment = grid.get("experiment") or (str(metrics["experiment"].iloc[0]) if metrics is not None else "?")
    profile = grid.get("profile") or (str(metrics["profile"].iloc[0]) if metrics is not None else "?")
    return SweepStatus(name, path, experiment, profile, grid_trials, counts, driver, trials)


def sweeps_in(storage: str) -> list[str]:
    fs, root = filesystem_and_path(storage)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        raise SweepError(f"no folder at {storage}")
    folders = [i for i in fs.get_file_info(pafs.FileSelector(root)) if i.type == pafs.FileType.Directory]
    return sorted(f"{storage.rstrip('/')}/{i.base_name}" for i in folders if is_sweep(f"{storage}/{i.base_name}"))


def summary_line(status: SweepStatus) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in status.counts.items() if n)
    grid = f"{status.grid_trials} trials" if status.grid_trials else "grid not on record"
    what = f"{status.experiment}/{status.profile}, {grid}: {counts or 'no rows yet'}"
    return f"{status.name}: {what}; driver {status.driver}"


def status_text(status: SweepStatus) -> str:
    lines = [summary_line(status)]
    if status.trials:
        width = max(len(t["trial_id"]) for t in status.trials)
        lines.append(f"  {'trial':<{width}}  {'status':<9} step")
        for t in status.trials:
            line = f"  {t['trial_id']:<{width}}  {t['status']:<9} {t['step']:,}/{t['iterations']:,}"
            if t["seconds_left"] is not None:
                wall = t.get("wall_seconds_per_iteration")
                rate = f"{wall:.3g} s/iteration" if wall else f"{t['seconds_per_iteration']:.3g} s/iteration training"
                line += f"  {rate}, ~{_duration(t['seconds_left'])} left"
            if t.get("note"):
                line += f"  [{t['note']}]"
            lines.append(line)
    return "\n".join(lines)


def run_status(path: str, as_json: bool) -> str:
    """The text (or JSON) `status` prints for a sweep folder or a storage folder of sweeps."""
    path = storage_uri(path)
    if is_sweep(path):
        status = sweep_status(path)
        return json.dumps(asdict(status)) if as_json else status_text(status)
    found = [sweep_status(p) for p in sweeps_in(path)]
    if as_json:
        return json.dumps([asdict(s) for s in found])
    if not found:
        return f"no sweeps in {path}"
    return "\n".join(summary_line(s) for s in found)
