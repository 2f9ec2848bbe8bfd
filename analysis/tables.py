"""Tables as Markdown and CSV."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def mean_pm_se(mean: float, se: float, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def summary_cells(
    summary: pd.DataFrame, metric: str, digits: int = 2, missing_means: str = "without a value", unit: str = ""
) -> list[str]:
    """One "mean ± se" cell per row of a ``mean_and_standard_error`` table.

    A seed whose value is missing (NaN) never silently leaves the mean: the cell then says how
    many seeds its mean is over and what the missing ones were, e.g. "(2 seeds; 3 collapsed)".
    """
    cells = []
    for mean, se, n, missing in zip(
        summary[f"{metric}_mean"], summary[f"{metric}_se"], summary[f"{metric}_n"], summary[f"{metric}_missing"]
    ):
        text = mean_pm_se(mean, se, digits)
        text = text if text == "n/a" else text + unit
        if missing:
            text += f" ({int(n)} seed{'s' if n != 1 else ''}; {int(missing)} {missing_means})"
        cells.append(text)
    return cells


def significance_cell(row) -> str:
    """One row of ``stats.against_baseline`` as a table cell: p, seeds on each side, and the verdict."""
    if row.p != row.p:  # NaN: a side without any value
        return f"n/a ({row.seeds} vs {row.baseline_seeds} seeds with a value)"
    text = f"p = {row.p:.3g} ({row.seeds} vs {row.baseline_seeds} seeds)"
    if row.claimed == "no direction":
        return text
    if row.claimed == "alike":
        return text + (": alike (no significant difference)" if row.supported else ": differ")
    return text + f", {row.claimed}: " + ("supported" if row.supported else "not supported")


def significance_markdown(tests: pd.DataFrame, labels: dict[str, str], axes: tuple[str, ...] = ()) -> str:
    """``stats.unroll_against_none``'s rows as one table: a row per (axes, K), a column per metric
    (`labels` names them), each cell a ``significance_cell``; with a note when seeds are too few."""
    rows: dict[tuple, dict] = {}
    for row in tests.itertuples():
        key = (*(getattr(row, a) for a in axes), row.unroll_steps)
        rows.setdefault(key, {})[labels.get(row.metric, row.metric)] = significance_cell(row)
    frame = pd.DataFrame(
        [{**dict(zip(axes, key)), "unroll steps vs K = 0": key[-1], **v} for key, v in sorted(rows.items())]
    )
    note = ""
    if (tests[["seeds", "baseline_seeds"]].min(axis=1) < 4).any():
        note = ("\n\nWith 3 or fewer seeds on a side, even a complete separation gives p >= 0.1 in an exact "
                "rank test: run at least 4 seeds per setting (5 for p = 0.008) to test the claim.")  # fmt: skip
    return to_markdown(frame) + note


def significance_section(
    tests: pd.DataFrame,
    out_dir: Path,
    files: list[Path],
    claim: str,
    labels: dict[str, str],
    axes: tuple[str, ...] = (),
) -> str:
    """A report's significance paragraph and table for ``stats.unroll_against_none``'s `tests`, which also
    land in `out_dir`/significance.csv (appended to `files`). `claim` states the paper's claim."""
    if not len(tests):
        return "Only one unroll setting: nothing to compare."
    tests.to_csv(out_dir / "significance.csv", index=False)
    files.append(out_dir / "significance.csv")
    within = f" at the same {', '.join(axes)}" if axes else ""
    return (
        f"Each unroll setting against K = 0{within} across seeds (two-sided Mann-Whitney U test, exact; a seed "
        f"without a value, e.g. no reverse KL after a collapse, is left out of that test). {claim} Supported = "
        f"p < 0.05 in the claimed direction.\n\n" + significance_markdown(tests, labels, axes)
    )


def to_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_markdown(frame: pd.DataFrame, path: Path, files: list[Path]) -> str:
    """The table as Markdown, written to `path` (added to the report's `files`); returns the Markdown."""
    markdown = to_markdown(frame)
    path.write_text(markdown + "\n")
    files.append(path)
    return markdown


def write_table(frame: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    csv, md = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    frame.to_csv(csv, index=False)
    md.write_text(to_markdown(frame) + "\n")
    return [csv, md]
