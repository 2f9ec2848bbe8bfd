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
from trainables.results import ResultsError, final_rows, load_metrics
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
    """Per trial with rows: trial_id, status, step, iterations, seconds_per_iteration (over its last report
    interval, evaluation included; None with one row) and, while running, seconds_left at that rate."""


def _grid_size(grid: dict) -> int:
    """Trials in a grid record: counted, not rebuilt, so a record whose experiment has since changed still counts."""
    sizes = [len(grid["seeds"]), len(grid["unroll_steps"]), *(len(v) for v in grid.get("axes", {}).values())]
    return math.prod(sizes) * max(1, len(grid.get("variants", ())))


def _driver(path: str) -> str:
    record = holder(path)
    if record is None:
        return "none"
    if not record:
        return "unreadable lock"
    if is_stale(record):
        return f"stale lock: a driver on {record.get('host')} (pid {record.get('pid')}) is gone"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started_at", 0)))
    return f"running on {record.get('host')} (pid {record.get('pid')}) since {since}"


def _seconds_per_iteration(metrics) -> dict[str, float]:
    """Each trial's own seconds (training and evaluation) per iteration over its last two rows (``time_s`` counts
    its own time across resumes, so a pause between sessions does not inflate it); trials with one row are left
    out."""
    rates = {}
    for trial_id, run in metrics.sort_values("step").groupby("trial_id"):
        if len(run) >= 2:
            (step0, time0), (step1, time1) = run[["step", "time_s"]].iloc[-2:].itertuples(index=False)
            if step1 > step0:
                rates[trial_id] = (time1 - time0) / (step1 - step0)
    return rates


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
    if metrics is not None:
        rates = _seconds_per_iteration(metrics)
        for row in final_rows(metrics, include_ended_early=True).itertuples():
            iterations = json.loads(row.config_json).get("iterations")
            rate = rates.get(row.trial_id)
            left = rate * (iterations - row.step) if rate is not None and row.status == "running" else None
            trials.append({"trial_id": row.trial_id, "status": row.status, "step": int(row.step),
                           "iterations": iterations, "seconds_per_iteration": rate, "seconds_left": left})  # fmt: skip
            counts[row.status] = counts.get(row.status, 0) + 1
    grid_trials = _grid_size(grid) if grid else 0
    counts["not started"] = max(0, grid_trials - len(trials))
    experiment = grid.get("experiment") or (str(metrics["experiment"].iloc[0]) if metrics is not None else "?")
    profile = grid.get("profile") or (str(metrics["profile"].iloc[0]) if metrics is not None else "?")
    return SweepStatus(name, path, experiment, profile, grid_trials, counts, _driver(path), trials)


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
                line += f"  {t['seconds_per_iteration']:.3g} s/iteration, ~{_duration(t['seconds_left'])} left"
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
