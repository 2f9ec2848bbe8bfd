"""Reading a sweep's Parquet results (layout and schema: ``trainables/results.py``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from trainables.layout import SweepLayout


class ResultsError(ValueError):
    """The results cannot be read; the message is one line for the user."""


def parquet_root(path: str) -> tuple[pafs.FileSystem, str]:
    """The ``parquet`` folder of a sweep, given the sweep folder or that folder itself (path or URI)."""
    try:
        fs, root = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), _absolute(path))
    except (pa.ArrowInvalid, OSError) as error:
        raise ResultsError(f"cannot open {path}: {error}") from None
    for candidate in (SweepLayout(root.rstrip("/")).parquet, root.rstrip("/")):
        if fs.get_file_info(f"{candidate}/metrics").type == pafs.FileType.Directory:
            return fs, candidate
    raise ResultsError(f"no sweep results at {path} (expected {SweepLayout(path).metrics})")


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _read(path: str, table: str, filter=None, columns=None) -> pd.DataFrame:
    fs, root = parquet_root(path)
    location = f"{root}/{table}"
    if fs.get_file_info(location).type != pafs.FileType.Directory:
        raise ResultsError(f"no {table} table at {location}")
    try:
        dataset = pads.dataset(location, filesystem=fs, format="parquet", partitioning="hive")
        result = dataset.to_table(filter=filter, columns=columns)
    except (pa.ArrowInvalid, OSError) as error:
        raise ResultsError(f"corrupt results file under {location}: {str(error).splitlines()[0]}") from None
    if result.num_rows == 0:
        raise ResultsError(f"{location} holds no rows yet")
    return result.to_pandas()


def load_metrics(path: str) -> pd.DataFrame:
    """One row per (trial, reported step), sorted by trial then step."""
    frame = _read(path, "metrics")
    frame["experiment"] = frame["experiment"].astype(str)
    if "status" not in frame:  # written before trials recorded their status
        frame["status"] = "unknown"
    return frame.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)


def load_samples(path: str, kind: str | None = None) -> pd.DataFrame:
    """Sample snapshots; ``kind`` (e.g. 'model' or 'data') to read only those."""
    filter = None if kind is None else pads.field("kind") == kind
    frame = _read(path, "samples", filter=filter)
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


ENDED_EARLY = {
    "diverged": "diverged (losses or weights became non-finite)",
    "stopped": "stopped early by a Tune scheduler",
    # A trial Tune ends while its worker waits for the next result cannot always record the stop
    # (the worker is ended before it runs any cleanup), so a last row that says "running" is never
    # taken for a finished trial.
    "running": "with no end recorded (still training, or ended by Tune before they could record it)",
}
"""Final statuses of trials whose last row is not the end of their schedule, and what they mean."""


def final_rows(metrics: pd.DataFrame, include_ended_early: bool = False) -> pd.DataFrame:
    """Each trial's last reported row. Trials that diverged or were stopped early are left out unless
    asked for: their last metrics are NaN or from an earlier step, and a mean must not quietly mix
    them in or become one of fewer seeds (reports list them with ``ended_early``)."""
    final = metrics.loc[metrics.groupby("trial_id")["step"].idxmax()].reset_index(drop=True)
    return final if include_ended_early else final[~final["status"].isin(ENDED_EARLY)].reset_index(drop=True)


def ended_early(metrics: pd.DataFrame) -> pd.DataFrame:
    """The final row of every trial that diverged or was stopped early, in trial order."""
    final = final_rows(metrics, include_ended_early=True)
    return final[final["status"].isin(ENDED_EARLY)].reset_index(drop=True)


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
