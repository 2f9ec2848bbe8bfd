"""One driver per sweep: a lease kept in the sweep's own storage, local folder or S3.

The lock is ``<sweep>/driver.lock``, a small JSON record (host, pid, start time, owner id, last
heartbeat). A driver takes it before it starts Ray, renews it every ``HEARTBEAT_S`` seconds, and
deletes it when it ends. A second driver finds it and is refused with one line. A driver killed
with SIGKILL cannot delete it, so a lock whose heartbeat is older than ``lease_s`` is stale: the
next driver takes it over and the sweep resumes; on the same host, where it can see that the
driver's process is gone, at once.

Both "create only if absent" and "take over only if unchanged" must be atomic, or two drivers
could both win. What each storage guarantees:
- a local (or NFS) folder: ``link(2)`` of a fully written temporary file onto the lock's name
  fails if the name exists; a takeover ``rename(2)``s the stale lock away first, which only one
  driver can do;
- S3: conditional writes, ``PutObject`` with ``If-None-Match: *`` to create and ``If-Match:
  <ETag>`` to take over or renew (strongly consistent since 2024; pyarrow's filesystem cannot send
  these headers, so boto3 does).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from trainables.layout import SweepLayout

from .preflight import SweepError

LEASE_S = float(os.environ.get("UNROLLED_GAN_LOCK_LEASE_S", 60))
"""A lock not renewed for this long belongs to a dead driver (the environment variable is for tests)."""
HEARTBEAT_S = min(10.0, LEASE_S / 4)


@dataclass
class _Held:
    record: dict
    version: str
    """What a conditional write must find: the ETag on S3, the file's content locally."""


class _LocalStore:
    def __init__(self, folder: str):
        self.path = Path(SweepLayout(folder).lock_file)

    def create(self, text: str) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        temporary.write_text(text)
        try:
            os.link(temporary, self.path)  # atomic, and fails if the lock exists
        except FileExistsError:
            return None
        finally:
            temporary.unlink()
        return text

    def read(self) -> tuple[str, str] | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        return text, text

    def replace(self, version: str, text: str) -> str | None:
        # Only one driver can rename the lock away; it then checks that what it moved is what it
        # judged (else someone renewed it meanwhile) and puts its own in place.
        moved = self.path.with_name(f".{self.path.name}.taken-{uuid.uuid4().hex}")
        try:
            os.rename(self.path, moved)
        except FileNotFoundError:
            return None
        if moved.read_text() != version:
            with contextlib.suppress(FileExistsError):
                os.link(moved, self.path)  # put the live driver's lock back
            moved.unlink()
            return None
        moved.unlink()
        return self.create(text)

    def renew(self, version: str, text: str) -> str | None:
        found = self.read()
        if found is None or found[1] != version:
            return None
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        temporary.write_text(text)
        os.replace(temporary, self.path)
        return text

    def delete(self, version: str) -> None:
        found = self.read()
        if found is not None and found[1] == version:
            self.path.unlink(missing_ok=True)


class _S3Store:
    def __init__(self, uri: str):
        import boto3
        from botocore.exceptions import ClientError

        self.client, self.error = boto3.client("s3"), ClientError
        self.bucket, _, self.key = SweepLayout(uri).lock_file.removeprefix("s3://").partition("/")

    def _put(self, text: str, **condition) -> str | None:
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=text.encode(), **condition)["ETag"]
        except self.error as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return None
            raise

    def create(self, text: str) -> str | None:
        return self._put(text, IfNoneMatch="*")

    def read(self) -> tuple[str, str] | None:
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.error as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return found["Body"].read().decode(), found["ETag"]

    def replace(self, version: str, text: str) -> str | None:
        return self._put(text, IfMatch=version)

    renew = replace

    def delete(self, version: str) -> None:
        found = self.read()
        if found is not None and found[1] == version:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)


class SweepLock:
    """``with SweepLock(path, name):`` holds the sweep for this driver, or raises SweepError."""

    def __init__(self, path: str, name: str, lease_s: float = LEASE_S):
        self.name, self.lease_s = name, lease_s
        self.store = _store(path)
        self.where = SweepLayout(path).lock_file
        self.held: _Held | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, started: float | None = None) -> dict:
        now = time.time()
        return {"host": socket.gethostname(), "pid": os.getpid(), "owner": self._owner, "started_at": started or now,
                "heartbeat_at": now}  # fmt: skip

    def acquire(self) -> None:
        self._owner = uuid.uuid4().hex
        record = self._record()
        text = json.dumps(record)
        version = self.store.create(text)
        if version is None:
            found = self.store.read()
            if found is None:  # released in between: try once more
                version = self.store.create(text)
            else:
                existing = _parse(found[0])
                age = time.time() - existing.get("heartbeat_at", 0)
                if not is_stale(existing, self.lease_s):
                    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(existing.get("started_at", 0)))
                    raise SweepError(
                        f"sweep {self.name} is already running, started at {started} on host "
                        f"{existing.get('host', '?')} (pid {existing.get('pid', '?')}); its lock {self.where} was "
                        f"renewed {age:.0f} s ago. Wait for that driver to end; if it is gone, re-run in "
                        f"{self.lease_s - age + 1:.0f} s, when its lock counts as stale"
                    )
                version = self.store.replace(found[1], text)  # stale: its driver is gone
        if version is None:
            raise SweepError(f"sweep {self.name}: another driver took its lock {self.where} at the same moment")
        self.held = _Held(record, version)
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="sweep-lock-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            held = self.held
            record = {**held.record, "heartbeat_at": time.time()}
            version = self.store.renew(held.version, json.dumps(record))
            if version is None:  # taken over: this driver was thought dead; say so and stop renewing
                print(f"warning: lost the lock {self.where} to another driver", flush=True)
                return
            self.held = _Held(record, version)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.held is not None:
            self.store.delete(self.held.version)
            self.held = None

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _store(path: str) -> _LocalStore | _S3Store:
    return _S3Store(path) if path.startswith("s3://") else _LocalStore(path)


def holder(path: str) -> dict | None:
    """The lock record of the driver holding the sweep at `path` (host, pid, started_at, heartbeat_at), or None."""
    found = _store(path).read()
    return None if found is None else _parse(found[0])


def is_stale(record: dict, lease_s: float = LEASE_S) -> bool:
    """Whether a lock record belongs to a driver that is gone: not renewed within its lease, or a dead local pid."""
    return time.time() - record.get("heartbeat_at", 0) > lease_s or _dead_here(record)


def _dead_here(record: dict) -> bool:
    """A lock of this very host whose process is gone is stale at once, without waiting out its lease."""
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _parse(text: str) -> dict:
    try:
        record = json.loads(text)
    except ValueError:
        return {}  # unreadable: treated as stale once its lease has passed (heartbeat_at 0)
    return record if isinstance(record, dict) else {}
