"""Reading a sweep's Parquet results in pandas: the analysis's helpers on top of ``trainables.results``, which
defines the layout and schema and reads the metrics (the orchestrator reads them there too)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.dataset as pads

from trainables.results import (  # noqa: F401 (re-exported: analysis code and users import them from here)
    ENDED_EARLY,
    ResultsError,
    ended_early,
    final_rows,
    load_metrics,
    parquet_root,
    read_dataset,
)


def paper_method(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's method: unrolled trials with the full second gradient, and K = 0 trials whatever
    their ``second_order`` flag (without unrolling there is no second gradient to keep or stop). The
    stop-gradient variants are the Appendix B study (``ablations``), reported beside the paper's tables."""
    return metrics[metrics["second_order"] | (metrics["unroll_steps"] == 0)]


def load_samples(path: str, kind: str | None = None) -> pd.DataFrame:
    """Sample snapshots; ``kind`` (e.g. 'model' or 'data') to read only those."""
    filter = None if kind is None else pads.field("kind") == kind
    frame = read_dataset(path, "samples", filter=filter)
    frame["experiment"] = frame["experiment"].astype(str)
    return frame.sort_values(["trial_id", "step", "kind", "sample_index"], kind="stable").reset_index(drop=True)


def data_of_one_trial(samples: pd.DataFrame, kind: str = "data") -> pd.DataFrame:
    """The real samples a single trial wrote (every trial of a sweep draws them the same way)."""
    data = samples[samples["kind"] == kind]
    return data[data["trial_id"] == data["trial_id"].iloc[0]]


def last_snapshots(samples: pd.DataFrame, kind: str = "model") -> pd.DataFrame:
    """Each trial's samples of `kind` (generated ones by default) at its last snapshot step."""
    model = samples[samples["kind"] == kind]
    return model[model["step"] == model.groupby("trial_id")["step"].transform("max")]


def mean_and_standard_error(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Per group: mean, standard error of the mean (ddof=1; NaN for one seed) and the count, over seeds.

    ``<metric>_n`` counts the seeds in the mean and ``<metric>_missing`` those whose value is NaN,
    which the mean leaves out; tables must show the latter (``tables.summary_cells`` does).
    """
    grouped = frame.groupby(by, sort=True)[columns]
    mean, sem, count = grouped.mean(), grouped.sem(), grouped.count()
    missing = grouped.size().to_frame().values - count
    out = pd.concat({"mean": mean, "se": sem, "n": count, "missing": missing}, axis=1)
    out.columns = [f"{metric}_{stat}" for stat, metric in out.columns]
    ordered = [f"{metric}_{stat}" for metric in columns for stat in ("mean", "se", "n", "missing")]
    return out[ordered].reset_index()


def axis_columns(metrics) -> list[str]:
    """The sweep's axis columns, as its rows record them (``axis_columns``); rows written before that column
    existed name them through their config instead (every axis is a config field)."""
    names: list[str] = []
    recorded = metrics["axis_columns"].dropna() if "axis_columns" in metrics else []
    for text in dict.fromkeys(recorded):
        names += [n for n in json.loads(text) if n not in names]
    if "axis_columns" not in metrics or len(recorded) < len(metrics):
        identity = {"seed", "unroll_steps", "second_order"}
        fields = set().union(*(json.loads(text) for text in dict.fromkeys(metrics["config_json"].dropna())))
        names += [c for c in metrics.columns if c in fields - identity and c not in names]
    return names


def varied_axes(metrics: pd.DataFrame, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The axis columns that take more than one value in these rows."""
    return [a for a in axis_columns(metrics) if a not in leave_out and metrics[a].nunique() > 1]
