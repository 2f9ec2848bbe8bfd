"""Files in a sweep's storage, a local folder or a URI such as s3://bucket/prefix (pyarrow's filesystems).

Every write that another process may read is atomic: a temporary name, then a move, so a
reader never sees half a file however the writer dies. No torch here: the orchestrator uses
it before any trial starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def filesystem_and_path(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for an absolute local path or a URI such as s3://bucket/prefix."""
    return pafs.FileSystem.from_uri(uri)


def read_file(fs: pafs.FileSystem, path: str) -> bytes | None:
    """A whole file's bytes, or None where there is no file."""
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def write_atomically(fs: pafs.FileSystem, path: str, write: Callable[[pa.NativeFile], None]) -> None:
    directory, name = path.rsplit("/", 1)
    fs.create_dir(directory, recursive=True)
    temporary = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
    with fs.open_output_stream(temporary) as out:
        write(out)
    # A rename on local disks; object stores copy, but an object appears only once complete.
    fs.move(temporary, path)


def write_table_atomically(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    write_atomically(fs, path, lambda out: pq.write_table(table, out))
