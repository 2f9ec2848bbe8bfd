"""Every check a sweep passes before Ray starts, one rule and one message each.

The grid (``check_grid``: seeds, unroll steps, axes, variants, overrides, every grid point's config), the
sweep's name and resources (``check_name``, ``check_resources``), its storage and cluster address, and the
GPUs a local Ray would have. The checks that need a running cluster (its GPUs) are in ``orchestrator.sweep``
and reuse the messages here (``cuda_graphs_refused``, ``no_gpu``).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from trainables.grid_point import RESERVED, is_int


class SweepError(ValueError):
    """A sweep cannot start; the message is one line for the user."""


# A sweep lands in <storage>/<name>/: no separator, no '..', nothing a shell or a URI reads specially.
SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> None:
    if not SWEEP_NAME.fullmatch(name) or name.strip(".") == "":
        raise SweepError(
            f"sweep name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            f"(at most 100, starting with a letter or digit), so the sweep stays inside its storage"
        )


def check_int(what: str, value: Any, minimum: int) -> None:
    """The one integer rule of a sweep's options: an integer (not a bool), at least `minimum`."""
    if not is_int(value) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise SweepError(f"{what} must be {kind}, got {value!r}")


def check_grid(
    seeds: tuple, unroll_steps: tuple, axes: dict[str, tuple], variants: tuple[dict, ...], overrides: dict,
    fields: dict[str, type], experiment: str,
) -> None:  # fmt: skip
    """The grid's own shape: values present, integers where they must be, nothing set twice."""
    for option, values in (("--seeds", seeds), ("--unroll-steps", unroll_steps)):
        if not values:
            raise SweepError(f"{option} needs at least one value")
        for value in values:
            check_int(f"{option} values", value, 0)
        if len(set(values)) != len(values):
            raise SweepError(f"{option} has repeated values: {list(values)}")
    bad_axes = sorted(set(axes) - set(fields) | set(axes) & set(RESERVED))
    if bad_axes:
        raise SweepError(
            f"--axis {', '.join(bad_axes)}: not a config field of {experiment} that can be an axis "
            f"(seeds and unroll steps have their own options)"
        )
    for name, values in axes.items():
        if not values:
            raise SweepError(f"--axis {name} needs at least one value")
        if len(set(values)) != len(values):
            raise SweepError(f"--axis {name} has repeated values: {list(values)}")
    if variants:
        keys = set(variants[0])
        for variant in variants:
            if not variant or set(variant) != keys:
                raise SweepError(f"every variant must set the same fields ({', '.join(sorted(keys))}), got {variant}")
        bad = sorted(keys - set(fields) | keys & {*RESERVED, *axes})
        if bad:
            raise SweepError(f"variant field(s) {', '.join(bad)}: not config fields, or already a grid axis")
        if len({json.dumps(v, sort_keys=True) for v in variants}) != len(variants):
            raise SweepError(f"variants has repeated entries: {list(variants)}")
    clash = sorted({*RESERVED, *axes, *(variants[0] if variants else ())} & set(overrides))
    if clash:
        raise SweepError(f"--set {', '.join(clash)}: these are sweep axes, use their own options")


def check_resources(
    cpus_per_trial: Any, seeds_per_trial: Any, gpus_per_trial: float | None, max_concurrent: Any, max_failures: Any
) -> None:
    check_int("--cpus-per-trial", cpus_per_trial, 1)
    check_int("--seeds-per-trial", seeds_per_trial, 1)
    if max_concurrent is not None:
        check_int("--max-concurrent", max_concurrent, 1)
    check_int("--max-failures", max_failures, 0)
    gpus = gpus_per_trial
    if gpus is not None and not (math.isfinite(gpus) and gpus >= 0):
        raise SweepError(f"--gpus-per-trial must be a finite number >= 0 (0 = CPU only), got {gpus}")
    if gpus is not None and gpus > 1 and gpus != int(gpus):
        # Ray shares a GPU only as a fraction below 1; above that it needs whole GPUs.
        raise SweepError(f"--gpus-per-trial above 1 must be a whole number, got {gpus}")


def cuda_graphs_refused(why: str) -> SweepError:
    """The one message of the rule "CUDA graphs need GPU trials", with where the GPU is missing."""
    return SweepError(f"--set cuda_graphs=true needs GPU trials: {why}")


def check_local_gpus(gpus_per_trial: float | None, cuda_graphs: bool = False) -> None:
    """Before a local Ray starts: a GPU request this machine cannot meet is refused here, not by a hang."""
    wanted = gpus_per_trial if gpus_per_trial is not None else (1 if cuda_graphs else 0)
    if not wanted:
        return
    import torch

    found = torch.cuda.device_count()
    if found == 0:
        why = (
            f"this machine has no GPU that torch {torch.__version__} can use "
            f"({'a CPU-only build' if torch.version.cuda is None else 'no device or driver found'}); "
            f"drop the option, or pass --address of a cluster with GPUs"
        )
        raise (
            cuda_graphs_refused(why)
            if gpus_per_trial is None
            else SweepError(f"--gpus-per-trial {gpus_per_trial:g}: {why}")
        )
    if wanted > found:
        raise SweepError(f"--gpus-per-trial {wanted:g}: this machine has only {found} GPU(s)")


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
