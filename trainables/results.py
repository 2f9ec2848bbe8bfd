"""The Parquet results layout: the one place its schema is defined.

A sweep's results live under ``<storage>/<sweep>/parquet/`` as two hive-partitioned datasets:

``metrics/experiment=<name>/<trial_id>-<step>.parquet``
    one row per (trial, reported step). Columns, in order:

    ==============  ========  ==============================================================
    sweep           string    sweep name (the Tune experiment name)
    trial_id        string    the trial's grid point, e.g. ``seed=0,unroll_steps=10`` (plus any axes):
                              stable across resumes and restarts, unique within a sweep; with Tune
                              checkpoints, the member's generation: ``member=<Tune trial id>,generation=<g>``
    profile         string    smoke | quick | paper
    seed            int64     the trial's seed
    unroll_steps    int64     K, discriminator steps unrolled in the generator's loss
    second_order    bool      False = stop-gradient variant
    <axes>          per axis  the experiment's further sweep axes (e.g. ``d_size``)
    generation      int64     only in sweeps with Tune checkpoints (``lineage``): the member's generation,
                              0 until a scheduler's exploit
    parent          string    only there: the trial_id of the segment this generation started from ('' for 0)
    parent_step     int64     only there: that segment's step at the exploit (-1 for generation 0)
    step            int64     training iterations completed when the row was measured
    status          string    running | finished (the trial's last step) | diverged (losses or
                              parameters turned non-finite at this step; the trial's last row,
                              metrics NaN) | stopped (ended early by a Tune scheduler or stopper;
                              a trial Tune ends before it can say so keeps a last "running" row) |
                              paused (with Tune checkpoints: ended by Tune at a checkpoint it can resume
                              from; later rows follow if it does) | exploited (with Tune checkpoints: the
                              last row of a generation a scheduler replaced; superseded, not ended)
    time_s          float64   training wall time of the trial up to this step (excludes evaluation;
                              seeds packed in one trial share their trial's time)
    node_id         string    Ray node that ran the step ('' outside Ray)
    tune_trial_id   string    Tune's id of the trial that wrote the row ('' outside Ray), to find its logs
    hostname        string    host that ran the step
    axis_columns    string    the names of the <axes> columns above, as a JSON list (what readers use
                              to find them)
    config_json     string    the trial's full resolved config, as JSON
    artifacts_json  string    SHA-256 of each sweep artifact the trial read (data, classifier), as
                              JSON; '{}' outside a sweep
    <metrics>       float64   the experiment's metrics (``Experiment.metrics`` documents each)
    ==============  ========  ==============================================================

``samples/experiment=<name>/<trial_id>-<step>.parquet``
    generated (and, once per trial, real) samples for the figures: the identity columns
    above through ``step``, then ``kind`` (string: ``model`` and ``data`` for every experiment,
    plus what an experiment's ``describe``/``final`` add, e.g. ``model_colour``, ``data_colour``,
    ``inference_error``, ``inference_target``, ``reconstruction``, ``model_distance``,
    ``data_distance``), ``sample_index`` (int32),
    ``shape`` (list<int32>, one sample's shape) and ``values`` (list<float32>, the sample
    flattened in C order).

``experiment`` is the hive partition key, so it is a column when the dataset is read.

Why one file per (trial, step): a report's rows are written before the trial's state
(``trainables.trial_state.TrialStateFile``) is saved, each file atomically (temporary name, then rename), so a
crash never leaves a half-written file, and a trial that resumes from its state rewrites
the very same file names for the steps it repeats: every (trial, step) appears exactly
once. File names come from the grid point, not from Tune's trial id, so even a trial Tune
starts over under a new id overwrites the same files. Temporary names start with '.',
which pyarrow's dataset discovery skips.
"""

from __future__ import annotations

import json
import math
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .grid_point import GridPoint
from .layout import SweepLayout
from .lineage import Lineage
from .storage import filesystem_and_path, write_table_atomically

_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def _fields(**types) -> list[pa.Field]:
    """Columns by name, each typed by its Python type (int is int64, float float64) or by an Arrow type."""
    return [pa.field(name, _ARROW_TYPES.get(kind, kind)) for name, kind in types.items()]


IDENTITY_COLUMNS = _fields(sweep=str, trial_id=str, profile=str, seed=int, unroll_steps=int, second_order=bool)
ROW_COLUMNS = _fields(
    step=int,
    status=str,
    time_s=float,
    node_id=str,
    tune_trial_id=str,
    hostname=str,
    axis_columns=str,
    config_json=str,
    artifacts_json=str,
)
SAMPLE_COLUMNS = _fields(
    step=int, kind=str, sample_index=pa.int32(), shape=pa.list_(pa.int32()), values=pa.list_(pa.float32())
)
LINEAGE_COLUMNS = _fields(generation=int, parent=str, parent_step=int)


def axis_fields(axes: dict[str, type]) -> list[pa.Field]:
    # An axis that is an identity column already (second_order) keeps that one column.
    identity = {f.name for f in IDENTITY_COLUMNS}
    return _fields(**{name: kind for name, kind in axes.items() if name not in identity})


def _identity_fields(axes: dict[str, type], lineage: bool) -> list[pa.Field]:
    return IDENTITY_COLUMNS + axis_fields(axes) + (LINEAGE_COLUMNS if lineage else [])


def metrics_schema(axes: dict[str, type], metrics: list[str], lineage: bool = False) -> pa.Schema:
    fields = _identity_fields(axes, lineage) + ROW_COLUMNS
    return pa.schema(fields + [pa.field(m, pa.float64()) for m in metrics])


def samples_schema(axes: dict[str, type], lineage: bool = False) -> pa.Schema:
    return pa.schema(_identity_fields(axes, lineage) + SAMPLE_COLUMNS)


@dataclass(frozen=True)
class TrialIdentity:
    """What a trial's rows say it is: its sweep, experiment and profile, and its (one-seed) grid point."""

    sweep: str
    experiment: str
    profile: str
    point: GridPoint
    second_order: bool
    node_id: str = ""
    tune_trial_id: str = ""
    hostname: str = socket.gethostname()
    lineage: Lineage | None = None
    """A member's generation under a checkpoint scheduler (``lineage``); None for a grid point's trial."""

    @property
    def trial_id(self) -> str:
        return self.point.trial_id if self.lineage is None else self.lineage.trial_id

    @property
    def axes(self) -> dict:
        """axis column -> this trial's value"""
        return self.point.axis_values

    def columns(self) -> dict:
        return {
            "sweep": self.sweep,
            "trial_id": self.trial_id,
            "profile": self.profile,
            "seed": self.point.seed,
            "unroll_steps": self.point.unroll_steps,
            "second_order": self.second_order,
            **self.axes,
            **(self.lineage.columns() if self.lineage else {}),
        }


def row_file(root: str, table: str, experiment: str, trial_id: str, step: int) -> str:
    """The file holding one report of one trial: ``root`` is the sweep's parquet folder, ``table`` metrics or
    samples."""
    return f"{root}/{table}/experiment={experiment}/{trial_id}-{step:09d}.parquet"


class ResultsWriter:
    """Writes one trial's reports under ``root`` (a sweep's ``parquet`` folder, local path or URI)."""

    def __init__(
        self, root: str, identity: TrialIdentity, metrics: list[str], config_json: str, artifacts_json: str = "{}"
    ):
        self.fs, self.root = filesystem_and_path(root)
        self.identity, self.metric_names, self.config_json = identity, metrics, config_json
        self.artifacts_json = artifacts_json
        axis_types = {k: type(v) for k, v in identity.axes.items()}
        self.metrics_schema = metrics_schema(axis_types, metrics, identity.lineage is not None)
        self.samples_schema = samples_schema(axis_types, identity.lineage is not None)
        # The axis columns by name, so a reader never finds them by their place in the schema.
        self.axis_columns = json.dumps([f.name for f in axis_fields(axis_types)])

    def _path(self, table: str, step: int) -> str:
        return row_file(self.root, table, self.identity.experiment, self.identity.trial_id, step)

    def write(
        self, step: int, time_s: float, metrics: dict[str, float], samples: dict[str, np.ndarray],
        status: str = "running",
    ) -> None:  # fmt: skip
        ident = self.identity
        row = {
            **ident.columns(),
            "step": step,
            "status": status,
            "time_s": time_s,
            "node_id": ident.node_id,
            "tune_trial_id": ident.tune_trial_id,
            "hostname": ident.hostname,
            "axis_columns": self.axis_columns,
            "config_json": self.config_json,
            "artifacts_json": self.artifacts_json,
        }
        row.update({m: _float_or_nan(metrics.get(m)) for m in self.metric_names})
        table = pa.Table.from_pylist([row], schema=self.metrics_schema)
        if samples:
            self._write_samples(step, samples)
        # Metrics last: a metrics row on disk implies its samples are there too.
        write_table_atomically(self.fs, self._path("metrics", step), table)

    def finished_at(self, step: int) -> bool:
        """Whether this trial's row at `step` is written, says 'finished', and was written by this config: then the
        trial is done even where its state file is gone (a sweep's rows kept, its trial states not)."""
        path = self._path("metrics", step)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return False
        with self.fs.open_input_file(path) as source:
            row = pq.read_table(source, columns=["status", "config_json"]).to_pylist()
        return row == [{"status": "finished", "config_json": self.config_json}]

    def mark(self, step: int, status: str) -> bool:
        """Rewrite the status of this trial's row at `step` (e.g. ``exploited``); False if there is no such row."""
        path = self._path("metrics", step)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return False
        with self.fs.open_input_file(path) as source:
            table = pq.read_table(source)
        index = table.schema.get_field_index("status")
        write_table_atomically(self.fs, path, table.set_column(index, "status", pa.array([status] * table.num_rows)))
        return True

    def _write_samples(self, step: int, samples: dict[str, np.ndarray]) -> None:
        columns: dict[str, list] = {f.name: [] for f in self.samples_schema}
        base = self.identity.columns()
        for kind, array in samples.items():
            array = np.asarray(array, dtype=np.float32)
            flat = array.reshape(len(array), -1)
            for name, value in base.items():
                columns[name].extend([value] * len(array))
            columns["step"].extend([step] * len(array))
            columns["kind"].extend([kind] * len(array))
            columns["sample_index"].extend(range(len(array)))
            columns["shape"].extend([list(array.shape[1:])] * len(array))
            columns["values"].extend(list(flat))
        table = pa.Table.from_pydict(columns, schema=self.samples_schema)
        write_table_atomically(self.fs, self._path("samples", step), table)


def _float_or_nan(value) -> float:
    return math.nan if value is None else float(value)


# Reading: what the orchestrator (diverged trials, status) and the analysis share.


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


def read_dataset(path: str, table: str, filter=None, columns=None) -> pd.DataFrame:
    """One of a sweep's datasets ('metrics' or 'samples') as pandas, or one clear ResultsError."""
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
    frame = read_dataset(path, "metrics")
    frame["experiment"] = frame["experiment"].astype(str)
    if "status" not in frame:  # written before trials recorded their status
        frame["status"] = "unknown"
    return frame.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)


ENDED_EARLY = {
    "diverged": "diverged (losses or weights became non-finite)",
    "stopped": "stopped early by a Tune scheduler",
    "paused": "paused by a Tune scheduler and never resumed",
    # A trial Tune ends while its worker waits for the next result cannot always record the stop
    # (the worker is ended before it runs any cleanup), so a last row that says "running" is never
    # taken for a finished trial.
    "running": "with no end recorded (still training, or ended by Tune before they could record it)",
}
"""Final statuses of trials whose last row is not the end of their schedule, and what they mean."""


SUPERSEDED = "exploited"
"""The last row of a generation a checkpoint scheduler replaced (``lineage``): its member goes on in the next."""


def final_rows(metrics: pd.DataFrame, include_ended_early: bool = False) -> pd.DataFrame:
    """Each trial's last reported row. Trials that diverged or were stopped early are left out unless
    asked for: their last metrics are NaN or from an earlier step, and a mean must not quietly mix
    them in or become one of fewer seeds (reports list them with ``ended_early``). A generation a
    scheduler superseded is never a final row: its member's history goes on in a later generation."""
    final = metrics.loc[metrics.groupby("trial_id")["step"].idxmax()]
    final = final[final["status"] != SUPERSEDED].reset_index(drop=True)
    return final if include_ended_early else final[~final["status"].isin(ENDED_EARLY)].reset_index(drop=True)


def ended_early(metrics: pd.DataFrame) -> pd.DataFrame:
    """The final row of every trial that diverged or was stopped early, in trial order."""
    final = final_rows(metrics, include_ended_early=True)
    return final[final["status"].isin(ENDED_EARLY)].reset_index(drop=True)
