"""Driver loss: kill the sweep command mid-run, run it again, and get exactly the uninterrupted results."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import SMOKE_SWEEP

from analysis.results import load_metrics

pytestmark = pytest.mark.slow

OVERRIDES = ["iterations=3000", "report_every=250", "snapshot_every=1500"]


def sweep_command(storage):
    return [sys.executable, "-m", "orchestrator", *SMOKE_SWEEP, "--set", *OVERRIDES, "--storage", str(storage),
            "--no-report"]  # fmt: skip


# When to kill the driver: as soon as Tune has created the sweep (its own record of the
# trials may not be on storage yet), or once trials are a third of the way through.
KILL_WHEN = {
    "at the start": "tuner.pkl",
    "mid-sweep": "parquet/metrics/experiment=mog/*-000001000.parquet",
}


@pytest.mark.parametrize("moment", KILL_WHEN)
def test_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path, moment, same_as_without_ray):
    partition = tmp_path / "mog-smoke" / "parquet" / "metrics" / "experiment=mog"
    driver = subprocess.Popen(
        sweep_command(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        written = list((tmp_path / "mog-smoke").glob(KILL_WHEN[moment]))
        if written:
            break
        time.sleep(0.05)
    assert written, "the sweep got nowhere in time"
    second = subprocess.run(sweep_command(tmp_path), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "sweep mog-smoke is already running" in second.stderr, second.stderr[-2000:]
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait()
    assert f'"pid": {driver.pid}' in (tmp_path / "mog-smoke" / "driver.lock").read_text()  # left behind
    steps_before = len(list(partition.glob("*.parquet"))) if partition.exists() else 0
    assert steps_before < 4 * 13, "the sweep finished before it was killed; nothing was tested"

    rerun = subprocess.run(sweep_command(tmp_path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed mog-smoke: 4/4 trials ran to their end" in rerun.stdout

    metrics = load_metrics(str(tmp_path / "mog-smoke"))
    assert len(metrics) == 4 * 13  # steps 0, 250, ..., 3000 for each of 4 trials
    assert not metrics.duplicated(["trial_id", "step"]).any()

    same_as_without_ray(metrics)
