"""Sweep artifacts: published once with their hashes, read back only if intact, kept on resume."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from orchestrator.sweep import _published_artifacts
from trainables import artifacts, experiments
from trainables.errors import DatasetError


def test_published_bytes_come_back_only_when_their_hash_matches(tmp_path):
    sweep = str(tmp_path / "s")
    manifest = artifacts.publish(sweep, {"table": artifacts.npz_blob({"x": np.arange(5)}, note="hi")})
    entry = manifest["table"]
    data = (tmp_path / "s" / "artifacts" / entry["uri"].rsplit("/", 1)[1]).read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["note"] == "hi"
    assert artifacts.npz_arrays(artifacts.fetch("table", entry))["x"].tolist() == [0, 1, 2, 3, 4]
    assert json.loads((tmp_path / "s" / "artifacts" / "manifest.json").read_text()) == manifest

    path = tmp_path / "s" / "artifacts" / entry["uri"].rsplit("/", 1)[1]
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DatasetError, match=r"sweep artifact 'table' at .* is corrupt: sha256 "):
        artifacts.fetch("table", entry)
    path.unlink()
    with pytest.raises(DatasetError, match=r"sweep artifact 'table' is missing: "):
        artifacts.fetch("table", entry)


def test_a_resumed_sweep_keeps_its_own_artifacts_whatever_the_local_cache_holds(tmp_path):
    from orchestrator import SweepSpec

    spec = SweepSpec("stacked_mnist", "smoke", storage=str(tmp_path)).resolved()
    first = artifacts.publish(str(tmp_path / "sweep"), {"classifier": (b"the first one", {"test_accuracy": 0.99})})

    def must_not_run(cfg):
        raise AssertionError("a resumed sweep prepared its artifacts again")

    experiment = dataclasses.replace(experiments.get("stacked_mnist"), prepare=must_not_run)
    assert _published_artifacts(experiment, spec, str(tmp_path / "sweep"), progress=False) == first


def test_a_trial_reads_the_published_artifact_not_the_local_cache(tmp_path):
    from trainables.experiments._mnist import mnist_for

    cfg = experiments.get("color_mnist").config("smoke")
    fake = {name: np.full(shape, 7, np.uint8) for name, shape in
            [("train_images", (3, 28, 28)), ("train_labels", (3,)), ("test_images", (2, 28, 28)),
             ("test_labels", (2,))]}  # fmt: skip
    manifest = artifacts.publish(str(tmp_path / "s"), {"mnist": artifacts.npz_blob(fake)})
    published = mnist_for(cfg, artifacts.Assets(manifest))
    assert published.train_images.shape == (3, 28, 28) and (published.train_images == 7).all()
    assert mnist_for(cfg, artifacts.LOCAL).train_images.shape == (60_000, 28, 28)  # no manifest: the local copy
