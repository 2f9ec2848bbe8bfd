"""Where a sweep keeps what: the one place the folder and file names of ``<storage>/<sweep>/`` are spelled.

Standard library only, so the orchestrator and the analysis (which runs without torch) use it too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SweepLayout:
    """The files of the sweep at ``root`` (a local path or a URI such as s3://bucket/prefix/name)."""

    root: str

    @property
    def name(self) -> str:
        return self.root.rstrip("/").rsplit("/", 1)[-1]

    @property
    def spec_file(self) -> str:
        """The sweep's grid on record (the orchestrator's ``sweep.json``)."""
        return f"{self.root}/sweep.json"

    @property
    def lock_file(self) -> str:
        """The one-driver lease (``orchestrator.lock``)."""
        return f"{self.root}/driver.lock"

    @property
    def parquet(self) -> str:
        """The results datasets, ``metrics/`` and ``samples/`` (``trainables.results``)."""
        return f"{self.root}/parquet"

    @property
    def metrics(self) -> str:
        return f"{self.parquet}/metrics"

    @property
    def trial_state(self) -> str:
        """Each trial's resumable state, ``<trial_id>.pt`` (``trainables.trial_state``)."""
        return f"{self.root}/trial_state"

    @property
    def corrupt_state(self) -> str:
        """Where an unreadable trial state is set aside (kept, never deleted)."""
        return f"{self.trial_state}/corrupt"

    @property
    def artifacts(self) -> str:
        """The sweep's published data and metric models (``trainables.artifacts``)."""
        return f"{self.root}/artifacts"
