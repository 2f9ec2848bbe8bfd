"""`python -m analysis report PATH`: tables and figures of one sweep, from its Parquet files alone."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .notes import ITERATION_NOTE
from .results import ResultsError, diverged_trials, load_metrics


@dataclass
class ReportResult:
    out_dir: Path
    text: str
    files: list[Path]


def default_out_dir(path: str) -> Path:
    if "://" in path:
        return Path("reports") / path.rstrip("/").rsplit("/", 1)[-1]
    return Path(path).expanduser().resolve() / "report"


def _divergence_note(metrics) -> str:
    diverged = diverged_trials(metrics)
    if diverged.empty:
        return ""
    per_point = diverged.groupby("unroll_steps").size()
    counts = ", ".join(f"K={k}: {n}" for k, n in per_point.items())
    which = "; ".join(f"{row.trial_id} at step {row.step}" for row in diverged.itertuples())
    return (
        f"**Diverged trials** (losses or weights became non-finite), left out of every mean and table above: "
        f"{len(diverged)} ({counts}): {which}.\n\n"
    )


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
    text, files = importlib.import_module(f"analysis.experiments.{name}").report(path, metrics, out)
    sweep = metrics["sweep"].iloc[0]
    text = f"# Report for sweep `{sweep}`\n\n{text}\n\n{_divergence_note(metrics)}{ITERATION_NOTE}\n"
    (out / "report.md").write_text(text)
    return ReportResult(out, text, [out / "report.md", *files])
