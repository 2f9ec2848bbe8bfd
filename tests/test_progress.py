"""The driver's progress line: counts, and trials named by their grid point only."""

from types import SimpleNamespace

from orchestrator.progress import SweepProgress

CONFIG = {
    "seed": 1,
    "unroll_steps": 10,
    "d_size": 0.5,
    "experiment": "stacked_mnist",
    "profile": "quick",
    "sweep": "s",
    "results_dir": "/r/s/parquet",
    "state_dir": "/r/s/trial_state",
    "overrides": {"x": 1},
}


def test_progress_lines_name_trials_by_grid_point(capsys):
    progress = SweepProgress(2, headline=("modes",), every_s=0)
    running = SimpleNamespace(config=CONFIG, status="RUNNING")
    waiting = SimpleNamespace(config={**CONFIG, "seed": 0}, status="PENDING")
    progress.on_trial_result(0, [running, waiting], running, {"step": 500, "iterations": 10000, "modes": 7.0})
    progress.on_trial_complete(0, [running, waiting], running)
    progress.on_trial_error(0, [running, waiting], waiting)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(
        "0/2 done, 1 running, 0 errored | seed=1,unroll_steps=10,d_size=0.5: step 500/10000 modes=7"
    )
    assert lines[1].endswith("1/2 done, 0 running, 0 errored | finished seed=1,unroll_steps=10,d_size=0.5")
    assert lines[2].endswith("0/2 done, 1 running, 1 errored | ERROR in seed=0,unroll_steps=10,d_size=0.5")
