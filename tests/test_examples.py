"""The examples/ scripts run in smoke mode, and the public trainable behaves as a CLI sweep's trials do."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.report import build_report
from analysis.results import final_rows, load_metrics

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, timeout=300, cwd=None):
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def paper_grid(tmp_path_factory):
    # With its own default storage, ./results, as a user runs it (Tune refuses relative paths itself).
    folder = tmp_path_factory.mktemp("examples")
    out = run_example("paper_grid.py", "--smoke-test", cwd=folder)
    return folder / "results", out


@pytest.mark.slow  # the script's smoke sweep: ~40 s
def test_the_paper_grid_script_writes_a_sweep_the_report_reads(paper_grid, tmp_path):
    storage, out = paper_grid
    assert out.count("modes") == 4
    metrics = load_metrics(str(storage / "paper-grid"))
    assert sorted(metrics["trial_id"].unique()) == [
        "seed=0,unroll_steps=0", "seed=0,unroll_steps=2", "seed=1,unroll_steps=0", "seed=1,unroll_steps=2"
    ]  # fmt: skip
    assert (final_rows(metrics)["status"] == "finished").all() and set(metrics["sweep"]) == {"paper-grid"}
    report = subprocess.run([sys.executable, "-m", "analysis", "report", str(storage / "paper-grid"), "--out",
                             str(tmp_path / "report")], capture_output=True, text=True)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "figure1_samples.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # reads the paper-grid script's sweep
def test_the_analysis_script_draws_its_figure(paper_grid, tmp_path):
    storage, _ = paper_grid
    out = run_example("analyse_sweep.py", str(storage / "paper-grid"), "--out", str(tmp_path / "hq.png"))
    assert "high_quality_pct" in out and (tmp_path / "hq.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # a scheduler sweep in a fresh Ray: ~40 s
def test_the_asha_script_labels_the_trials_it_stops_and_the_report_reads_them(tmp_path):
    out = run_example("asha_smallest_k.py", "--smoke-test", cwd=tmp_path)  # its default ./results
    tmp_path = tmp_path / "results"
    assert "cheapest K with every surviving seed on all 8 modes:" in out
    metrics = load_metrics(str(tmp_path / "asha-smallest-k"))
    final = final_rows(metrics, include_ended_early=True)
    assert set(final["status"]) <= {"finished", "stopped"} and len(final) == 4
    report = build_report(str(tmp_path / "asha-smallest-k"), tmp_path / "report")
    stopped = final[final["status"] == "stopped"]
    assert ("**Trials stopped early by a Tune scheduler**, left out" in report.text) == (len(stopped) > 0)


@pytest.mark.slow  # a searcher sweep in a fresh Ray: ~40 s
def test_the_optuna_script_searches_learning_rates_and_k(tmp_path):
    out = run_example("optuna_search.py", "--smoke-test", cwd=tmp_path)  # its default ./results
    tmp_path = tmp_path / "results"
    assert out.startswith("best: K=") or "\nbest: K=" in out
    metrics = load_metrics(str(tmp_path / "optuna-lr-k"))
    assert metrics["trial_id"].nunique() == 3 and {"g_lr", "d_lr"} <= set(metrics.columns)


def stopped_by_tune(tmp_path, overrides: dict, reports: int):
    """Two mog smoke trials (K = 2) that a Tune stopper ends after `reports` reports; their rows."""
    from ray import tune

    from trainables.ray_adapter import trainable

    tuner = tune.Tuner(
        trainable("mog", "smoke", overrides=overrides),
        param_space={"seed": tune.grid_search([0, 1]), "unroll_steps": 2},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="stopped", stop={"training_iteration": reports},
                                  verbose=0),
    )  # fmt: skip
    assert all(r.error is None for r in tuner.fit())
    return load_metrics(str(tmp_path / "stopped"))


def test_a_trial_a_tune_stopper_ends_is_recorded_as_stopped(ray_local, tmp_path):
    metrics = stopped_by_tune(tmp_path, {"report_every": 10, "snapshot_every": 40}, reports=2)
    # Stopped after its second report; a trial that was quick enough may have written a third row
    # before the stop reached it; and one Tune ends while its worker waits for the next result may
    # be ended before it can mark its last row. Either way no row says finished, no mean uses them,
    # and the report lists both.
    for statuses in metrics.groupby("trial_id")["status"].apply(list):
        assert len(statuses) >= 2 and statuses[-1] in ("stopped", "running") and "finished" not in statuses
    assert final_rows(metrics).empty  # nothing finished: no mean may use them
    report = build_report(str(tmp_path / "stopped"), tmp_path / "report")
    listed = re.findall(r"left out of every mean and table above: (\d+)", report.text)
    assert sum(map(int, listed)) == 2, report.text


def test_a_trial_stopped_while_it_trains_towards_its_next_report_is_recorded_as_stopped(ray_local, tmp_path):
    # Stopped after its step-0 report, the trial is deep in training towards the next one (far away):
    # Tune then ends the worker after cleanup instead of raising in a report() that never comes.
    long = {"iterations": 1_000_000, "report_every": 500_000, "snapshot_every": 500_000}
    metrics = stopped_by_tune(tmp_path, long, reports=1)
    # Usually the worker's cleanup marks the row stopped; when Tune ends the worker while it waits for
    # the next result, the row stays running, which analysis never takes for a finished trial.
    statuses = metrics.groupby("trial_id")["status"].apply(list).tolist()
    assert all(s in (["stopped"], ["running"]) for s in statuses) and len(statuses) == 2, statuses
    assert final_rows(metrics).empty


def test_a_trial_stopped_at_its_last_report_is_finished_not_stopped(ray_local, tmp_path):
    from ray import tune

    # smoke: reports at steps 0, 20 and 40 (the end); ASHA's max_t stops a trial at its last one.
    from ray.tune.schedulers import ASHAScheduler

    from trainables.ray_adapter import trainable

    tuner = tune.Tuner(
        trainable("mog", "smoke"),
        param_space={"seed": 0, "unroll_steps": 0},
        tune_config=tune.TuneConfig(scheduler=ASHAScheduler(metric="modes", mode="max", max_t=3, grace_period=3)),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="ends", verbose=0),
    )
    assert all(r.error is None for r in tuner.fit())
    assert load_metrics(str(tmp_path / "ends"))["status"].tolist() == ["running", "running", "finished"]


@pytest.mark.slow  # a smoke Tune run in a fresh interpreter: ~1 min
def test_the_readme_tune_snippet_runs_as_printed_on_the_smoke_profile(tmp_path):
    """The README's "From your own Tune script" block, run in a fresh working directory; only its profile is
    swapped for the smoke one (the printed quick one takes minutes)."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("## From your own Tune script") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    assert 'trainable("mog", "quick")' in code and 'storage_path=str(Path("results").resolve())' in code
    script = tmp_path / "snippet.py"
    script.write_text(code.replace('trainable("mog", "quick")', 'trainable("mog", "smoke")'))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = load_metrics(str(tmp_path / "results" / "my-search"))
    assert metrics["trial_id"].nunique() == 6 and "g_lr" in metrics.columns  # the search dimension is a column


@pytest.mark.slow
def test_pbt_exploits_through_our_checkpoints_and_a_restore_adds_no_rows(tmp_path):
    """Synchronous PBT with real Tune: 4 members, time_attr="step"; at least one exploit, every (trial, step)
    once, no stop recorded for a pause, the report's population section, and Tuner.restore of the finished run
    writes nothing."""
    out = run_example("pbt.py", "--smoke-test", cwd=tmp_path)
    sweep = tmp_path / "results" / "pbt-ring"
    assert (sweep / "pbt_global.txt").read_text().strip(), "no exploit happened"
    metrics = load_metrics(str(sweep))
    assert not metrics.duplicated(["trial_id", "step"]).any()
    assert "stopped" not in set(metrics["status"]) and "exploited" in set(metrics["status"])
    later = metrics[metrics["generation"] > 0]
    assert (
        len(later) and (later.groupby("trial_id")["step"].min() > later.groupby("trial_id")["parent_step"].min()).all()
    )
    assert "exploit(s); best final modes:" in out
    # Every member ends with a finished row, an exploit decided at the last step (40) included.
    final = final_rows(metrics)
    assert len(final) == 4 and set(final["status"]) == {"finished"}
    files = sorted(p.name for p in (sweep / "parquet" / "metrics").rglob("*.parquet"))
    import ray
    from ray import tune

    from trainables.ray_adapter import trainable

    overrides = {"report_every": 10, "snapshot_every": 40}
    # The restore starts Ray in this process; the module's ray_local fixture, set up by a later test, would then
    # find it running, so it is shut down here unless a test before this one had started it.
    ray_was_up = ray.is_initialized()
    try:
        tune.Tuner.restore(str(sweep), trainable("mog", "smoke", overrides=overrides, tune_checkpoints=True)).fit()
    finally:
        if not ray_was_up:
            ray.shutdown()
    assert sorted(p.name for p in (sweep / "parquet" / "metrics").rglob("*.parquet")) == files
    report = build_report(str(sweep), tmp_path / "report")
    assert "## Population: 4 members" in report.text and (tmp_path / "report" / "lineages.png").exists()


def scheduled_members(tmp_path, scheduler, name):
    """4 mog smoke members (K = 2, reports every 10 of 40 iterations) under a checkpoint scheduler; their rows."""
    from ray import tune

    from trainables.ray_adapter import trainable

    tuner = tune.Tuner(
        trainable("mog", "smoke", overrides={"report_every": 10, "snapshot_every": 40}, tune_checkpoints=True),
        param_space={"seed": tune.grid_search([0, 1, 2, 3]), "unroll_steps": 2, "g_lr": tune.choice([1e-4, 1e-3])},
        tune_config=tune.TuneConfig(scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0),
    )
    assert all(r.error is None for r in tuner.fit())
    metrics = load_metrics(str(tmp_path / name))
    assert not metrics.duplicated(["trial_id", "step"]).any() and "stopped" not in set(metrics["status"])
    return metrics


@pytest.mark.slow
def test_pb2_explores_continuous_learning_rates_through_our_checkpoints(ray_local, tmp_path):
    from trainables.ray_adapter import pb2

    scheduler = pb2(time_attr="step", metric="modes", mode="max", perturbation_interval=20, quantile_fraction=0.25,
                    hyperparam_bounds={"g_lr": [1e-4, 3e-3], "d_lr": [1e-4, 3e-3]}, synch=True)  # fmt: skip
    metrics = scheduled_members(tmp_path, scheduler, "pb2")
    later = metrics[metrics["generation"] > 0]
    assert len(later), "PB2 made no exploit"
    assert set(later["d_lr"]) - {1e-4}  # a d_lr PB2 chose from its bounds, not the profile's


@pytest.mark.slow
def test_synchronous_hyperband_pauses_members_at_its_rungs_without_a_stop_or_a_repeat(ray_local, tmp_path):
    """A member HyperBand halts at a rung ends 'paused' (Tune may resume it from that checkpoint, and then its
    rows go on at the next report); every member's steps run 0, 10, 20, ... without a gap or a repeat."""
    from ray.tune.schedulers import HyperBandScheduler

    # Tune's report count as the time axis (5 reports of 40 iterations): then the first bracket holds 4 trials,
    # which these 4 fill, so HyperBand halves it at its rungs.
    scheduler = HyperBandScheduler(metric="modes", mode="max", max_t=5, reduction_factor=2)
    metrics = scheduled_members(tmp_path, scheduler, "hyperband")
    assert "paused" in set(metrics["status"]), metrics.groupby("trial_id")["status"].apply(list).tolist()
    for steps in metrics.groupby("trial_id")["step"].apply(list):
        assert steps == list(range(0, 10 * len(steps), 10))
    assert set(metrics["generation"]) == {0}  # HyperBand copies no state between members
