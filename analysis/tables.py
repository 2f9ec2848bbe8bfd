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


def to_markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_table(frame: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    csv, md = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    frame.to_csv(csv, index=False)
    md.write_text(to_markdown(frame) + "\n")
    return [csv, md]
