"""What every trial of a sweep must read byte for byte: its data and its metric models.

The driver prepares them once and publishes them in the sweep's own storage (local folder or
s3://), under ``<sweep>/artifacts/``, each file named by its content hash and listed with its
SHA-256 in ``manifest.json``. Trials, on any node, read exactly those bytes and check the hash;
they never fetch data or train a classifier themselves, so which node ran a trial cannot change
its numbers. A sweep that already has a manifest keeps it when resumed, whatever the local cache
holds by then.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import DatasetError
from .layout import SweepLayout
from .storage import filesystem_and_path, read_file, write_atomically

MANIFEST = "manifest.json"

Blob = tuple[bytes, dict[str, Any]]
"""An artifact's bytes and what a report may want to say about it (e.g. test_accuracy)."""


def read_manifest(sweep_path: str) -> dict[str, dict[str, Any]] | None:
    path = f"{SweepLayout(sweep_path).artifacts}/{MANIFEST}"
    data = read_file(*filesystem_and_path(path))
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise DatasetError(f"corrupt artifact manifest {path}") from None


def publish(sweep_path: str, blobs: dict[str, Blob]) -> dict[str, dict[str, Any]]:
    """Write each blob once under the sweep's artifacts folder and the manifest last (atomically)."""
    folder = SweepLayout(sweep_path).artifacts
    fs, root = filesystem_and_path(folder)
    manifest = {}
    for name, (data, info) in sorted(blobs.items()):
        digest = hashlib.sha256(data).hexdigest()
        file = f"{name}-{digest[:16]}.bin"
        if read_file(fs, f"{root}/{file}") is None:
            write_atomically(fs, f"{root}/{file}", lambda out, data=data: out.write(data))
        manifest[name] = {"uri": f"{folder}/{file}", "sha256": digest, "bytes": len(data), **info}
    text = json.dumps(manifest, indent=2, sort_keys=True)
    write_atomically(fs, f"{root}/{MANIFEST}", lambda out: out.write(text.encode()))
    return manifest


def fetch(name: str, entry: dict[str, Any]) -> bytes:
    """An artifact's bytes, checked against its hash: a missing or altered file is one clear error."""
    data = read_file(*filesystem_and_path(entry["uri"]))
    if data is None:
        raise DatasetError(f"sweep artifact {name!r} is missing: {entry['uri']}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise DatasetError(f"sweep artifact {name!r} at {entry['uri']} is corrupt: sha256 {digest}, "
                           f"expected {entry['sha256']}")  # fmt: skip
    return data


@dataclass(frozen=True)
class Assets:
    """The sweep's published artifacts a trial reads (its manifest), handed to ``Experiment.build``; empty outside
    a sweep, where experiments read their local files (``--mnist-dir``, the cache) instead."""

    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)
    _decoded: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def load(self, name: str, decode: Callable[[bytes], Any]) -> Any | None:
        """Artifact `name` decoded (once per Assets: a reused worker keeps its Assets), or None if not published."""
        entry = self.manifest.get(name)
        if entry is None:
            return None
        if entry["sha256"] not in self._decoded:
            self._decoded[entry["sha256"]] = decode(fetch(name, entry))
        return self._decoded[entry["sha256"]]

    def hashes(self) -> dict[str, str]:
        """Name -> SHA-256 of the artifacts a trial reads, for the Parquet rows (``artifacts_json``)."""
        return {name: entry["sha256"] for name, entry in sorted(self.manifest.items())}


LOCAL = Assets()
"""No published artifacts: read local files (tests, benches, a trial outside a sweep). Holds no state."""


def npz_blob(arrays: dict[str, Any], **info: Any) -> Blob:
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue(), info


def npz_arrays(data: bytes) -> dict[str, Any]:
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
