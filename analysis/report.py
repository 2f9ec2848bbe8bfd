"""`python -m analysis report PATH`: tables and figures of one sweep, from its Parquet files alone."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .notes import ITERATION_NOTE
from .results import (
    ENDED_EARLY,
    ResultsError,
    axis_columns,
    ended_early,
    final_rows,
    load_metrics,
    mean_and_standard_error,
    varied_axes,
)
from .stats import mann_whitney_u
from .tables import summary_cells, to_markdown


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


def metric_columns(metrics) -> list[str]:
    """The experiment's metric columns: the schema puts them after ``artifacts_json``."""
    columns = list(metrics.columns)
    return [c for c in columns[columns.index("artifacts_json") + 1 :] if c != "experiment"]


SETTINGS_METRICS = 4
"""Metrics shown per setting: the experiment's first ones (its headline metrics come first)."""


def settings_section(metrics, out: Path) -> str:
    """Every field the sweep varied (an --axis, a --variant, a Tune search dimension) with the final metrics at
    each of its values, mean ± s.e. over seeds; '' when the sweep varied nothing beyond seeds and unroll steps.
    The experiment's own tables above group by their paper axes only, so without this a search over, say,
    g_lr would be pooled out of sight."""
    final = final_rows(metrics)
    varied = [a for a in axis_columns(metrics) if final[a].nunique() > 1]
    if not varied or final.empty:
        return ""
    shown = [m for m in metric_columns(metrics) if final[m].notna().any()][:SETTINGS_METRICS]
    summary = mean_and_standard_error(final, [*varied, "second_order", "unroll_steps"], shown)
    summary.to_csv(out / "by_setting.csv", index=False)
    table = summary[[*varied, "second_order", "unroll_steps"]].copy()
    for metric in shown:
        table[metric] = summary_cells(summary, metric)
    table["seeds"] = summary[f"{shown[0]}_n"] + summary[f"{shown[0]}_missing"]
    tested = shown[:2]
    per_seed, p_values = [], []
    for row in summary.itertuples(index=False):
        setting = dict(zip([*varied, "second_order", "unroll_steps"], row))
        cell = final[(final[varied] == pd.Series({a: setting[a] for a in varied})).all(axis=1)]
        at_k = (cell["unroll_steps"] == setting["unroll_steps"]) & (cell["second_order"] == setting["second_order"])
        mine = cell[at_k]
        per_seed.append(", ".join(f"{v:g}" for v in mine.sort_values("seed")[shown[0]]))
        baseline = cell[cell["unroll_steps"] == 0]
        if setting["unroll_steps"] == 0 or baseline.empty:
            p_values.append("")
            continue
        p_values.append(", ".join(
            f"{mann_whitney_u(mine[m].dropna().to_numpy(), baseline[m].dropna().to_numpy())[1]:.2g}" for m in tested
        ))  # fmt: skip
    table[f"{shown[0]} per seed"] = per_seed
    table[f"p vs K = 0 ({', '.join(tested)})"] = p_values
    return (
        f"## By setting: the fields this sweep varied ({', '.join(varied)})\n\n"
        f"The tables above group by the paper's axes only and pool over these (their seed counts count every "
        f"setting's trials); here each setting is apart (final rows, mean ± standard error over seeds; "
        f"`by_setting.csv`). p: two-sided exact Mann-Whitney U of each unrolled row against K = 0 at the same "
        f"setting, seeds against seeds.\n\n" + to_markdown(table)
    )


MUTABLE_SHOWN = ("g_lr", "d_lr", "beta1", "beta2", "unroll_steps")
"""What a checkpoint scheduler may change (``trainables.lineage.MUTABLE_FIELDS``), shown per generation."""


def population_section(metrics, out: Path) -> tuple[str, list[Path]]:
    """A checkpoint scheduler's population (rows with ``generation``): every member's generations, where each
    started, the values it ran with and how it ended, and a figure of the first metric along every lineage."""
    if "generation" not in metrics.columns:
        return "", []
    import json

    from .figures import lineages

    metric = metric_columns(metrics)[0]
    lines = []
    for trial_id, run in metrics.sort_values("step").groupby("trial_id", sort=True):
        first, last = run.iloc[0], run.iloc[-1]
        config = json.loads(last["config_json"])
        origin = f"{first['parent']} at step {first['parent_step']}" if first["generation"] else "its own start"
        values = ", ".join(f"{name}={config[name]:g}" for name in MUTABLE_SHOWN if name in config)
        lines.append({"generation (trial_id)": trial_id, "from": origin, "steps": f"{first['step']}-{last['step']}",
                      "ran with": values, "ended": last["status"], metric: f"{last[metric]:g}"})  # fmt: skip
    figure = lineages(metrics, metric, out / "lineages.png", f"{metric} along every member's lineage")
    exploits = int((metrics.groupby("trial_id")["generation"].first() > 0).sum())
    text = (
        f"## Population: {metrics['tune_trial_id'].nunique()} members, {exploits} exploit(s)\n\n"
        f"A checkpoint scheduler (e.g. Population Based Training) ran this sweep: each member's generation is its "
        f"own trial; an exploit starts the next generation from another member's state, with the values below. "
        f"A superseded generation ends `exploited` and is left out of the tables above; `paused` rows in mid-history "
        f"are the scheduler's pauses (`lineages.png`).\n\n" + to_markdown(pd.DataFrame(lines))
    )
    return text, [figure]


def setting_columns(metrics) -> list[str]:
    """What tells one setting of these rows from another: the axes that vary, then the unroll (seeds pooled)."""
    return [*varied_axes(metrics), "second_order", "unroll_steps"]


PROGRESS_METRICS = 2
"""Metrics drawn and tabled for a sweep still training: the experiment's first (headline) ones."""


def progress_section(metrics, out: Path) -> tuple[str, list[Path]]:
    """While trials are still training (last row ``running``): every trial along its run so far, a line per seed
    (``progress.png``), and each setting at the last step that all its trials have reached, so a campaign of hours
    can be read before it ends. '' when no trial is running."""
    last = final_rows(metrics, include_ended_early=True)
    running = last[last["status"] == "running"]
    if running.empty:
        return "", []
    from .figures import seed_trajectories

    shown = [m for m in metric_columns(metrics) if metrics[m].notna().any()][:PROGRESS_METRICS]
    setting = setting_columns(metrics)
    title = f"Each trial so far, a line per seed ({len(running)} of {len(last)} not ended yet)"
    figure = seed_trajectories(metrics, shown, setting[:-2], out / "progress.png", title)
    reached = last.groupby(setting, sort=True)["step"].min().rename("common_step").reset_index()
    at_common = metrics.merge(reached, on=setting)
    at_common = at_common[at_common["step"] == at_common["common_step"]]
    summary = mean_and_standard_error(at_common, [*setting, "common_step"], shown)
    table = summary[setting].copy()
    table["at step"] = summary["common_step"]
    for metric in shown:
        table[metric] = summary_cells(summary, metric)
    table["seeds"] = summary[f"{shown[0]}_n"] + summary[f"{shown[0]}_missing"]
    text = (
        f"## In progress: {len(running)} of {len(last)} trials with rows have no end recorded yet\n\n"
        f"Interim, not a result: each setting at the last step all of its trials with rows have reached (mean ± "
        f"standard error over seeds); trials not yet started have no rows and are not counted, and one whose worker "
        f"was lost looks the same until the re-run trains it on. Every trial along its run: `progress.png`.\n\n"
        + to_markdown(table)
    )
    return text, [figure]


PROBE_COLUMNS = 8
"""Steps shown in the gradient probe's table, spread evenly over the run (the figure has them all)."""


def probe_section(metrics) -> str:
    """With ``gradient_probe``: the cosine between the generator gradient's two terms along training, per setting,
    mean over seeds (min to max), so whether the second term keeps cancelling the first can be read at a glance;
    '' without the probe."""
    if "grad_cosine" not in metrics or metrics["grad_cosine"].notna().sum() == 0:
        return ""
    probed = metrics[metrics["grad_cosine"].notna() & (metrics["status"] != "exploited")]
    setting = setting_columns(metrics)
    steps = sorted(probed["step"].unique())
    shown = sorted({steps[round(i * (len(steps) - 1) / max(1, PROBE_COLUMNS - 1))] for i in range(PROBE_COLUMNS)})
    rows = []
    for key, group in probed.groupby(setting, sort=True):
        row = dict(zip(setting, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = group["seed"].nunique()
        for step in shown:
            values = group.loc[group["step"] == step, "grad_cosine"]
            row[f"{step:,}"] = f"{values.mean():.2f} ({values.min():.2f} to {values.max():.2f})" if len(values) else ""
        rows.append(row)
    return (
        "## The generator gradient's two terms along training (gradient probe)\n\n"
        "Cosine between the first term (D held at its unrolled value) and the second (through the unrolled steps) "
        "at each reported step, mean over seeds (min to max): near -1 the second cancels the first.\n\n"
        + to_markdown(pd.DataFrame(rows))
    )


def cost_line(metrics) -> str:
    """What the trials cost: their own recorded training time (``time_s``: evaluation excluded, summed over
    resumes)."""
    last = final_rows(metrics, include_ended_early=True)
    if last.empty:
        return ""
    per_k = last.groupby("unroll_steps")["time_s"].mean()
    means = ", ".join(f"K={k} {seconds / 3600:.2f} h" for k, seconds in per_k.items())
    running = int((last["status"] == "running").sum())
    so_far = f"; {running} still training, their time so far" if running else ""
    return (
        f"**Cost**: {len(last)} trials recorded {last['time_s'].sum() / 3600:.1f} h of their own training time "
        f"(evaluation excluded, over every resume; trials side by side share the sweep's wall time{so_far}); "
        f"mean per trial {means}.\n\n"
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
    if final_rows(metrics).empty:  # nothing to average yet: say so instead of an empty table
        text, files = "No trial of this sweep has run to the end of its schedule (yet).", []
    else:
        text, files = importlib.import_module(f"analysis.experiments.{name}").report(path, metrics, out)
    settings = settings_section(metrics, out)
    if settings:
        text += "\n\n" + settings
        files.append(out / "by_setting.csv")
    for section, figures in (population_section(metrics, out), progress_section(metrics, out)):
        if section:
            text += "\n\n" + section
            files.extend(figures)
    probe = probe_section(metrics)
    if probe:
        text += "\n\n" + probe
    sweep = metrics["sweep"].iloc[0]
    notes = f"{_ended_early_note(metrics)}{cost_line(metrics)}{ITERATION_NOTE}"
    text = f"# Report for sweep `{sweep}`\n\n{text}\n\n{notes}\n"
    (out / "report.md").write_text(text)
    return ReportResult(out, text, [out / "report.md", *files])
