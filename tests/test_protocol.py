"""The trial protocol without Ray (trainables.protocol): rows, then state, then the report; resume, stop
marking and divergence, each as the Tune adapter relies on it."""

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.results import load_metrics
from trainables.grid_point import GridPoint
from trainables.layout import SweepLayout
from trainables.protocol import StopMarker, TrialRequest, run_trial
from trainables.trial_state import TrialStateFile

POINT = {"seed": 0, "unroll_steps": 2}  # mog smoke: reports at steps 0, 20 and 40


def request(tmp_path, point=POINT, **overrides):
    return TrialRequest("mog", "smoke", "s", SweepLayout(str(tmp_path / "s")), GridPoint.from_tune(point), overrides)


def rows(tmp_path):
    metrics = load_metrics(str(tmp_path / "s"))
    return [(r.trial_id, r.step, r.status, r.modes, r.g_loss) for r in metrics.itertuples()]


def same(a, b):
    return len(a) == len(b) and all(
        x[:3] == y[:3] and all(u == v or (math.isnan(u) and math.isnan(v)) for u, v in zip(x[3:], y[3:]))
        for x, y in zip(a, b)
    )


def test_every_report_is_rows_then_state_then_the_report(tmp_path):
    seen = []
    req = request(tmp_path)

    def report(summary):
        # By the time the scheduler hears of a step, its rows and the state that lets a retry skip it exist.
        state = TrialStateFile(req.layout, GridPoint.from_tune(POINT).trial_id).load()
        steps = [r[1] for r in rows(tmp_path)]
        seen.append((summary["step"], summary["status"], state["trainer"]["iteration"], steps[-1]))

    run_trial(req, "cpu", report)
    assert seen == [(0, "running", 0, 0), (20, "running", 20, 20), (40, "finished", 40, 40)]
    calls = []
    run_trial(req, "cpu", calls.append)  # finished: returns at once, writes nothing
    assert calls == []


def test_a_trial_that_crashed_resumes_from_its_state_into_the_uninterrupted_rows(tmp_path):
    straight = tmp_path / "straight"
    run_trial(request(straight), "cpu", lambda summary: None)

    def crash_after_the_second_report(summary):
        if summary["step"] == 20:
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        run_trial(request(tmp_path), "cpu", crash_after_the_second_report)
    assert [r[1:3] for r in rows(tmp_path)] == [(0, "running"), (20, "running")]  # a crash is not a stop
    run_trial(request(tmp_path), "cpu", lambda summary: None)
    assert same(rows(tmp_path), rows(straight))  # each (trial, step) once, the numbers of a run straight through


def test_a_finished_trial_whose_state_is_gone_is_done_by_its_rows_unless_another_config_wrote_them(tmp_path):
    req = request(tmp_path)
    run_trial(req, "cpu", lambda summary: None)
    state = TrialStateFile(req.layout, GridPoint.from_tune(POINT).trial_id)
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "s" / "parquet").rglob("*.parquet")}
    Path(state.path).unlink()  # a sweep's rows kept (copied elsewhere, committed), its trial states not
    calls = []
    run_trial(req, "cpu", calls.append)
    assert calls == [] and all(p.stat().st_mtime_ns == mtime for p, mtime in written.items())
    assert state.load() is None
    changed = request(tmp_path, g_lr=3e-4)  # the same grid point and trial id, another config: trained afresh
    run_trial(changed, "cpu", calls.append)
    assert [c["step"] for c in calls] == [0, 20, 40] and state.load()["config"]["g_lr"] == 3e-4


def test_a_stop_raised_in_the_report_marks_the_last_rows_stopped(tmp_path):
    def tune_stops_it(summary):
        if summary["step"] == 20:
            raise SystemExit  # what tune.report raises in a trial a scheduler stops

    with pytest.raises(SystemExit):
        run_trial(request(tmp_path), "cpu", tune_stops_it)
    assert [r[1:3] for r in rows(tmp_path)] == [(0, "running"), (20, "stopped")]


def test_a_stop_from_the_cleanup_thread_ends_the_trial_at_its_next_write(tmp_path):
    marker = StopMarker()

    def cleanup_runs_meanwhile(summary):
        marker.mark_stopped()  # the worker's cleanup, while the training thread goes on

    run_trial(request(tmp_path), "cpu", cleanup_runs_meanwhile, marker)
    assert [r[1:3] for r in rows(tmp_path)] == [(0, "stopped")]  # nothing written after the stop


def test_a_diverged_trial_ends_with_a_diverged_row_and_is_not_run_again(tmp_path):
    summaries = []
    req = request(tmp_path, {**POINT, "d_lr": 1e30})  # D's first step leaves float32's range
    run_trial(req, "cpu", summaries.append)
    assert [r[1:3] for r in rows(tmp_path)] == [(0, "running"), (1, "diverged")]
    assert summaries[-1]["status"] == "diverged" and math.isnan(summaries[-1]["modes"])
    again = []
    run_trial(req, "cpu", again.append)
    assert again == []


def test_packed_seeds_write_each_seeds_own_rows_and_report_their_mean(tmp_path):
    summaries = []
    run_trial(request(tmp_path, {"seeds": [0, 1], "unroll_steps": 2}), "cpu", summaries.append)
    metrics = load_metrics(str(tmp_path / "s"))
    assert sorted(metrics["trial_id"].unique()) == ["seed=0,unroll_steps=2", "seed=1,unroll_steps=2"]
    last = metrics[metrics["step"] == 40]
    assert summaries[-1]["status"] == "finished" and summaries[-1]["g_loss"] == pytest.approx(last["g_loss"].mean())


def test_a_conv_experiments_packed_seeds_write_the_rows_of_their_lone_trials(tmp_path):
    # Batch norm and convolutions under vmap (trainables.packed), evaluated through each seed's own networks.
    def rows(point, folder):
        request = TrialRequest("stacked_mnist", "smoke", "s", SweepLayout(str(tmp_path / folder)),
                               GridPoint.from_tune(point, ("d_size",)))  # fmt: skip
        run_trial(request, "cpu", lambda summary: None)
        return load_metrics(str(tmp_path / folder)).sort_values(["trial_id", "step"]).reset_index(drop=True)

    packed = rows({"seeds": [0, 1], "unroll_steps": 1, "d_size": 0.25}, "packed")
    lone = pd.concat([rows({"seed": s, "unroll_steps": 1, "d_size": 0.25}, f"lone{s}") for s in (0, 1)])
    lone = lone.sort_values(["trial_id", "step"]).reset_index(drop=True)
    assert packed["trial_id"].tolist() == lone["trial_id"].tolist() and packed["step"].tolist() == lone["step"].tolist()
    for metric in ("d_loss", "g_loss", "modes", "kl"):
        assert packed[metric].tolist() == pytest.approx(lone[metric].tolist(), rel=1e-4, nan_ok=True), metric
