"""Where a sweep keeps what: the one place the folder and file names of ``<storage>/<sweep>/`` are spelled.

Standard library only, so the orchestrator and the analysis (which runs without torch) use it too.
"""

from __future__ import annotations

from dataclasses import dataclass


def _inside(parent: str, name: str, doc: str) -> property:
    """The path ``name`` inside the one the attribute ``parent`` holds, as a read-only property."""
    return property(lambda layout: f"{getattr(layout, parent)}/{name}", doc=doc)


@dataclass(frozen=True)
class SweepLayout:
    """The files of the sweep at ``root`` (a local path or a URI such as s3://bucket/prefix/name)."""

    root: str

    spec_file = _inside("root", "sweep.json", "The sweep's grid on record (the orchestrator's ``sweep.json``).")
    lock_file = _inside("root", "driver.lock", "The one-driver lease (``orchestrator.lock``).")
    parquet = _inside("root", "parquet", "The results datasets, metrics/ and samples/ (``trainables.results``).")
    metrics = _inside("parquet", "metrics", "The metric rows, a file per trial and report step.")
    trial_state = _inside("root", "trial_state", "Each trial's resumable state, <trial_id>.pt.")
    corrupt_state = _inside("trial_state", "corrupt", "Where an unreadable trial state is set aside (never deleted).")
    artifacts = _inside("root", "artifacts", "The sweep's published data and metric models (``trainables.artifacts``).")

    @property
    def name(self) -> str:
        return self.root.rstrip("/").rsplit("/", 1)[-1]
