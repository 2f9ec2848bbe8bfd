"""`python -m analysis report PATH`: tables and figures of one sweep, from its Parquet files alone."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .notes import ITERATION_NOTE
from .results import ENDED_EARLY, ResultsError, ended_early, final_rows, load_metrics


@dataclass
class ReportResult:
    out_dir: Path
    text: str
    files: list[Path]


def default_out_dir(path: str) -> Path:
    if "://" in path:
        return Path("reports") / path.rstrip("/").rsplit("/", 1)[-1]
    return Path(path).expanduser().resolve() / "report"


def _ended_early_note(metrics) -> str:
    notes = []
    for status, rows in ended_early(metrics).groupby("status"):
        per_point = rows.groupby("unroll_steps").size()
        counts = ", ".join(f"K={k}: {n}" for k, n in per_point.items())
        which = "; ".join(f"{row.trial_id} at step {row.step}" for row in rows.itertuples())
        notes.append(
            f"**Trials {ENDED_EARLY[status]}**, left out of every mean and table above: "
            f"{len(rows)} ({counts}): {which}.\n\n"
        )
    return "".join(notes)


def build_report(path: str, out_dir: str | Path | None = None) -> ReportResult:
    metrics = load_metrics(path)
    names = sorted(metrics["experiment"].unique())
    if len(names) != 1:
        raise ResultsError(f"{path} mixes experiments {names}; report one sweep at a time")
    # Each experiment's report is analysis/experiments/<name>.py, named like its trainables module.
    name = names[0]
    if not name.isidentifier() or importlib.util.find_spec(f"analysis.experiments.{name}") is None:
        raise ResultsError(f"no report for experiment {name!r} (no analysis/experiments/{name}.py)")
    out = Path(out_dir) if out_dir else default_out_dir(path)
    out.mkdir(parents=True, exist_ok=True)
    if final_rows(metrics).empty:  # nothing to average yet: say so instead of an empty table
        text, files = "No trial of this sweep has run to the end of its schedule (yet).", []
    else:
        text, files = importlib.import_module(f"analysis.experiments.{name}").report(path, metrics, out)
    sweep = metrics["sweep"].iloc[0]
    text = f"# Report for sweep `{sweep}`\n\n{text}\n\n{_ended_early_note(metrics)}{ITERATION_NOTE}\n"
    (out / "report.md").write_text(text)
    return ReportResult(out, text, [out / "report.md", *files])
