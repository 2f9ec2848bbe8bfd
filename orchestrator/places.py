"""Where a sweep goes and which cluster runs it, checked before Ray starts: storage and the cluster's address."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from .spec import SweepError


def storage_uri(storage: str) -> str:
    """Absolute path or normalised URI: Tune rejects relative storage paths.

    A URI's path is normalised too (no '.', '..' or empty segments), so that nothing a sweep
    writes under ``<storage>/<name>/`` can land elsewhere in the bucket.
    """
    if "://" in storage:
        scheme, _, rest = storage.partition("://")
        segments = [s for s in rest.split("/") if s not in ("", ".")]
        if ".." in segments or not segments:
            raise SweepError(f"storage {storage!r}: a URI needs a bucket and no '..' segment")
        return f"{scheme}://{'/'.join(segments)}"
    return str(Path(storage).expanduser().resolve())


def check_storage_writable(storage: str) -> None:
    """Fail early, with one line, on a storage location that cannot take files."""
    if "://" in storage:
        try:
            fs, path = pafs.FileSystem.from_uri(storage)
            fs.create_dir(path, recursive=True)
        except Exception as error:  # pyarrow raises OSError/ArrowInvalid variants
            raise SweepError(f"storage {storage} is not usable: {error}") from None
        return
    path = Path(storage)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SweepError(f"storage {storage} is not writable: {error.strerror or error}") from None


def check_address_reachable(address: str | None) -> None:
    """Fail early on an --address nobody answers at; Ray itself retries for a long time."""
    if address in (None, "local"):
        return
    if address == "auto":
        if os.environ.get("RAY_ADDRESS"):
            return check_address_reachable(os.environ["RAY_ADDRESS"])
        if Path("/tmp/ray/ray_current_cluster").exists():
            return
        raise SweepError(
            "--address auto: no running Ray cluster found on this machine (start one with `ray start --head`)"
        )
    host_port = address.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {address!r} is not of the form host:port")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as error:
        raise SweepError(f"--address {address}: no Ray cluster reachable ({error.strerror or error})") from None
