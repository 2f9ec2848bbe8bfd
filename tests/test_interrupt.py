"""Ctrl-C (SIGINT) and a cluster's stop (SIGTERM) into a running sweep, with a real local Ray: the driver says the
sweep was interrupted, exits 128 + the signal, builds no report, and the same command then finishes the grid."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.results import load_metrics

# 4 trials on this 2-core machine: 2 run while 2 wait. Each trains long enough to be caught mid-run.
COMMAND = [
    sys.executable, "-m", "orchestrator", "sweep", "mog", "--profile", "smoke", "--seeds", "0", "1",
    "--unroll-steps", "0", "1", "--set", "iterations=4000", "report_every=400", "snapshot_every=4000", "--no-report",
]  # fmt: skip


def started_trials(sweep: Path) -> set[str]:
    folder = sweep / "parquet" / "metrics" / "experiment=mog"
    return {f.name.rsplit("-", 1)[0] for f in folder.glob("*.parquet")} if folder.exists() else set()


def sweep_command(storage: Path) -> list[str]:
    return [*COMMAND, "--storage", str(storage), "--name", "cut"]


@pytest.mark.slow  # two real sweeps interrupted and resumed: ~2 min each
@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_sweep_says_so_exits_non_zero_and_resumes(signal_name, code, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        sweep_command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while len(started_trials(tmp_path / "cut")) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert len(started_trials(tmp_path / "cut")) == 2, "two trials should be running"
    driver.send_signal(getattr(signal, signal_name))
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == code, (out, err)
    assert f"interrupted by {signal_name}" in err and "re-run the same command" in err, err
    assert "Traceback" not in err, err
    assert "Tuner.restore" not in err and "Failed to fetch metrics" not in err, err  # Tune's advice is not ours
    assert "trials ran to their end" not in out  # never reported as a finished sweep
    metrics = load_metrics(str(tmp_path / "cut"))
    assert not (metrics.groupby("trial_id")["status"].last() == "finished").all()

    again = subprocess.run(sweep_command(tmp_path), capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "4/4 trials ran to their end: 4 finished" in again.stdout
    metrics = load_metrics(str(tmp_path / "cut"))
    assert not metrics.duplicated(["trial_id", "step"]).any()
    last = metrics.groupby("trial_id").last()
    assert len(last) == 4 and (last["status"] == "finished").all() and (last["step"] == 4000).all()
