"""Parquet results: schema, atomic per-(trial, step) files, exactly-once rows, clear errors on bad files."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from analysis.results import ResultsError, final_rows, load_metrics, load_samples, mean_and_standard_error
from trainables.errors import TrialStateError
from trainables.grid_point import GridPoint
from trainables.layout import SweepLayout
from trainables.results import ResultsWriter, TrialIdentity
from trainables.trial_state import TrialStateFile

METRICS = ["modes", "reverse_kl"]


def writer(root, seed=0, unroll_steps=5, tune_trial_id="abc_00000"):
    identity = TrialIdentity(
        sweep="s",
        experiment="mog",
        profile="smoke",
        point=GridPoint((seed,), unroll_steps, (("d_size", 0.25),)),
        second_order=True,
        node_id="n1",
        tune_trial_id=tune_trial_id,
    )
    return ResultsWriter(str(root), identity, METRICS, json.dumps({"seed": seed}))


def test_rows_round_trip_with_the_documented_schema(tmp_path):
    w = writer(tmp_path)
    w.write(0, 0.0, {"modes": 1.0, "reverse_kl": math.nan}, {"data": np.ones((3, 2)), "model": np.zeros((2, 2))})
    w.write(10, 1.5, {"modes": 4.0, "reverse_kl": 0.5}, {})
    files = sorted((tmp_path / "metrics" / "experiment=mog").iterdir())
    key = "seed=0,unroll_steps=5,d_size=0.25"
    assert [f.name for f in files] == [f"{key}-000000000.parquet", f"{key}-000000010.parquet"]
    # The schema users' pandas code relies on, spelled out (README, "Parquet schema").
    schema = pq.read_schema(files[0])
    assert [(f.name, str(f.type)) for f in schema] == [
        ("sweep", "string"),
        ("trial_id", "string"),
        ("profile", "string"),
        ("seed", "int64"),
        ("unroll_steps", "int64"),
        ("second_order", "bool"),
        ("d_size", "double"),
        ("step", "int64"),
        ("status", "string"),
        ("time_s", "double"),
        ("node_id", "string"),
        ("tune_trial_id", "string"),
        ("hostname", "string"),
        ("axis_columns", "string"),
        ("config_json", "string"),
        ("artifacts_json", "string"),
        ("modes", "double"),
        ("reverse_kl", "double"),
    ]
    samples_schema = pq.read_schema(sorted((tmp_path / "samples" / "experiment=mog").iterdir())[0])
    assert [(f.name, str(f.type)) for f in samples_schema][7:] == [
        ("step", "int64"),
        ("kind", "string"),
        ("sample_index", "int32"),
        ("shape", "list<element: int32>"),
        ("values", "list<element: float>"),
    ]

    metrics = load_metrics(str(tmp_path))
    assert list(metrics["step"]) == [0, 10]
    assert list(metrics["experiment"]) == ["mog", "mog"]
    assert metrics["modes"].tolist() == [1.0, 4.0] and math.isnan(metrics["reverse_kl"][0])
    assert set(metrics["node_id"]) == {"n1"} and metrics["d_size"].tolist() == [0.25, 0.25]
    assert set(metrics["axis_columns"]) == {'["d_size"]'}  # readers find the axes by name (analysis.report)
    assert set(metrics["trial_id"]) == {key} and set(metrics["tune_trial_id"]) == {"abc_00000"}

    samples = load_samples(str(tmp_path))
    assert len(samples) == 5
    data = samples[samples["kind"] == "data"]
    assert np.stack(data["values"]).tolist() == [[1.0, 1.0]] * 3
    assert [list(s) for s in data["shape"]] == [[2]] * 3
    assert len(load_samples(str(tmp_path), kind="model")) == 2


def test_rewriting_a_step_replaces_it_and_temporary_files_are_ignored(tmp_path):
    w = writer(tmp_path)
    w.write(10, 1.0, {"modes": 1.0, "reverse_kl": 0.1}, {})
    w.write(10, 2.0, {"modes": 3.0, "reverse_kl": 0.2}, {})  # a retried trial repeating step 10
    partition = tmp_path / "metrics" / "experiment=mog"
    (partition / ".tmp-deadbeef-t1-000000020.parquet").write_bytes(b"half a file")  # a crash mid-write
    metrics = load_metrics(str(tmp_path))
    assert metrics[["step", "modes"]].values.tolist() == [[10, 3.0]]


def test_a_trial_is_finished_by_its_rows_only_at_a_finished_row_its_own_config_wrote(tmp_path):
    w = writer(tmp_path)
    assert not w.finished_at(20)  # no row
    w.write(20, 1.0, {"modes": 1.0}, {}, status="running")
    assert not w.finished_at(20)
    w.write(20, 1.0, {"modes": 1.0}, {}, status="finished")
    assert w.finished_at(20) and not w.finished_at(10)
    other = writer(tmp_path)
    other.config_json = json.dumps({"seed": 0, "iterations": 40})  # the same grid point, a config changed since
    assert not other.finished_at(20)


def test_a_trial_started_over_under_a_new_tune_id_overwrites_its_rows(tmp_path):
    writer(tmp_path, tune_trial_id="old_00000").write(10, 1.0, {"modes": 1.0, "reverse_kl": 0.1}, {})
    writer(tmp_path, tune_trial_id="new_00003").write(10, 1.0, {"modes": 1.0, "reverse_kl": 0.1}, {})
    writer(tmp_path, seed=1, tune_trial_id="new_00004").write(10, 1.0, {"modes": 2.0, "reverse_kl": 0.1}, {})
    metrics = load_metrics(str(tmp_path))
    assert metrics[["seed", "tune_trial_id"]].values.tolist() == [[0, "new_00003"], [1, "new_00004"]]


def test_corrupt_file_gives_one_clear_error(tmp_path):
    w = writer(tmp_path)
    w.write(0, 0.0, {"modes": 1.0, "reverse_kl": 0.1}, {})
    bad = tmp_path / "metrics" / "experiment=mog" / "t2-000000000.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="corrupt results file"):
        load_metrics(str(tmp_path))
    assert bad.read_bytes() == b"not parquet"  # reading never deletes anything


def test_missing_results_name_the_path(tmp_path):
    with pytest.raises(ResultsError, match="no sweep results at"):
        load_metrics(str(tmp_path / "nowhere"))


def test_final_rows_and_standard_error_across_seeds(tmp_path):
    for seed, modes in [(0, 6.0), (1, 8.0), (2, 7.0)]:
        w = writer(tmp_path, seed=seed)
        w.write(0, 0.0, {"modes": 0.0, "reverse_kl": 1.0}, {})
        w.write(20, 0.0, {"modes": modes, "reverse_kl": 0.1 * seed}, {}, status="finished")
    still_training = writer(tmp_path, seed=3)  # its last row says running: never taken for a final one
    still_training.write(10, 0.0, {"modes": 1.0, "reverse_kl": 1.0}, {})
    final = final_rows(load_metrics(str(tmp_path)))
    assert sorted(final["modes"]) == [6.0, 7.0, 8.0]
    table = mean_and_standard_error(final, ["unroll_steps"], ["modes"])
    assert table["modes_mean"].item() == 7.0
    assert math.isclose(table["modes_se"].item(), 1 / math.sqrt(3))  # std 1 over sqrt(3) seeds
    assert table["modes_n"].item() == 3


def test_trial_state_file_round_trips_and_is_absent_before_the_first_save(tmp_path):
    state_file = TrialStateFile(SweepLayout(str(tmp_path)), "seed=0,unroll_steps=5")
    assert state_file.load() is None
    state = {"trainer": {"weights": torch.arange(6, dtype=torch.float64).reshape(2, 3)}, "config": {}, "step": 20}
    state_file.save(state)
    state_file.save({**state, "step": 40})  # replaced, not appended
    loaded = state_file.load()
    assert loaded["step"] == 40 and torch.equal(loaded["trainer"]["weights"], state["trainer"]["weights"])
    state_file.save({"not": "a trial's state"})
    with pytest.raises(TrialStateError, match="is not a trial's state"):
        state_file.load()
    assert [p.name for p in (tmp_path / "trial_state").iterdir()] == ["seed=0,unroll_steps=5.pt"]


def test_a_report_shows_every_field_a_search_varied_not_only_the_papers_axes(tmp_path):
    """A Tune search that draws g_lr: the MoG report's tables group by unroll steps; the settings section
    keeps each g_lr apart, mean over seeds."""
    from analysis.report import build_report
    from trainables import experiments

    root = tmp_path / "sweep" / "parquet"
    modes = {(1e-4, 0): 2.0, (1e-4, 1): 4.0, (1e-3, 0): 6.0, (1e-3, 1): 8.0}
    for (g_lr, seed), value in modes.items():
        identity = TrialIdentity("s", "mog", "smoke", GridPoint((seed,), 5, (("g_lr", g_lr),)), True)
        config = experiments.get("mog").config("smoke", {"seed": seed, "unroll_steps": 5, "g_lr": g_lr}).to_json()
        w = ResultsWriter(str(root), identity, ["modes", "high_quality_pct", "reverse_kl"], config)
        w.write(0, 0.0, {"modes": 0.0}, {"data": np.zeros((4, 2)), "model": np.zeros((4, 2))}, "running")
        w.write(10, 1.0, {"modes": value, "high_quality_pct": 50.0, "reverse_kl": 0.1}, {"model": np.zeros((4, 2))},
                "finished")  # fmt: skip
    report = build_report(str(tmp_path / "sweep"), tmp_path / "report")
    assert "## By setting: the fields this sweep varied (g_lr)" in report.text
    assert "| 0.0001 | True | 5 | 3.00 ± 1.00 |" in report.text and "| 0.001 | True | 5 | 7.00 ± 1.00 |" in report.text
    assert (tmp_path / "report" / "by_setting.csv") in report.files


def test_the_report_finds_axis_columns_by_name_in_new_rows_and_old_ones(tmp_path):
    from analysis.results import axis_columns

    identity = TrialIdentity("s", "mog", "smoke", GridPoint((0,), 5, (("second_order", True), ("g_lr", 1e-3))), True)
    config = json.dumps({"seed": 0, "unroll_steps": 5, "second_order": True, "g_lr": 1e-3, "iterations": 10})
    ResultsWriter(str(tmp_path), identity, METRICS, config).write(0, 0.0, {"modes": 1.0}, {})
    metrics = load_metrics(str(tmp_path))
    # second_order is an identity column of its own, so it is never listed twice.
    assert metrics["axis_columns"].tolist() == ['["g_lr"]'] and axis_columns(metrics) == ["g_lr"]
    # Rows written before the column existed: the axes are the config fields that are columns.
    old = metrics.drop(columns=["axis_columns"])
    assert axis_columns(old) == ["g_lr"]
    # Never by position: a column moved elsewhere is still found, a metric next to it is not taken for one.
    moved = old[[c for c in old.columns if c != "g_lr"] + ["g_lr"]]
    assert axis_columns(moved) == ["g_lr"]


def test_each_setting_gets_its_seeds_values_and_a_p_value_against_k0_at_that_setting(tmp_path):
    """A 2-setting x K in {0, 5} sweep: the settings table lists each row's per-seed values and tests each unrolled
    row against K = 0 of its own setting only (3 against 3 seeds, all apart: the exact two-sided p is 0.1)."""
    from analysis.report import build_report
    from trainables import experiments

    root = tmp_path / "sweep" / "parquet"
    # At g_lr 1e-4 the unroll wins in every seed; at 1e-3 the two K interleave.
    modes = {(1e-4, 0): [1.0, 2.0, 3.0], (1e-4, 5): [7.0, 8.0, 9.0], (1e-3, 0): [1.0, 5.0, 9.0],
             (1e-3, 5): [2.0, 4.0, 8.0]}  # fmt: skip
    for (g_lr, k), values in modes.items():
        for seed, value in enumerate(values):
            identity = TrialIdentity("s", "mog", "smoke", GridPoint((seed,), k, (("g_lr", g_lr),)), True)
            config = experiments.get("mog").config("smoke", {"seed": seed, "unroll_steps": k, "g_lr": g_lr})
            w = ResultsWriter(str(root), identity, ["modes", "high_quality_pct", "reverse_kl"], config.to_json())
            w.write(0, 0.0, {"modes": 0.0}, {"data": np.zeros((4, 2)), "model": np.zeros((4, 2))}, "running")
            w.write(10, 1.0, {"modes": value, "high_quality_pct": value, "reverse_kl": 0.1}, {}, "finished")
    text = build_report(str(tmp_path / "sweep"), tmp_path / "report").text
    rows = {line.split("|")[1].strip() + "/" + line.split("|")[3].strip(): line for line in text.splitlines()
            if line.startswith("| 0.00")}  # fmt: skip
    assert "| 7, 8, 9 | 0.1, 0.1 |" in rows["0.0001/5"]
    assert "| 2, 4, 8 | 1, 1 |" in rows["0.001/5"]
    assert rows["0.0001/0"].rstrip().endswith("| 1, 2, 3 |  |")  # the baseline row has no test of its own


def test_a_sweep_still_training_gets_an_interim_table_at_the_step_all_its_trials_reached_and_a_figure(tmp_path):
    """K = 0: two seeds finished at step 20. K = 5: seed 0 at step 20, seed 1 still at 10. The interim row for K = 5
    is at step 10 (the last step both of its trials reached), so a trial ahead is never compared with one behind;
    once nothing is running the section goes."""
    from analysis.report import build_report
    from trainables import experiments

    root = tmp_path / "sweep" / "parquet"
    # (k, seed): modes at steps 0, 10, 20 (None: not reached yet)
    runs = {(0, 0): [0.0, 2.0, 3.0], (0, 1): [0.0, 4.0, 5.0], (5, 0): [0.0, 6.0, 7.0], (5, 1): [0.0, 8.0, None]}
    writers = {}
    for (k, seed), values in runs.items():
        identity = TrialIdentity("s", "mog", "smoke", GridPoint((seed,), k, ()), True)
        config = experiments.get("mog").config("smoke", {"seed": seed, "unroll_steps": k}).to_json()
        writers[k, seed] = w = ResultsWriter(str(root), identity, ["modes", "high_quality_pct", "reverse_kl"], config)
        for step, value in zip((0, 10, 20), values):
            if value is not None:
                status = "finished" if step == 20 else "running"
                samples = {"model": np.zeros((4, 2)), **({"data": np.zeros((4, 2))} if step == 0 else {})}
                w.write(step, 1.0, {"modes": value, "high_quality_pct": value, "reverse_kl": 0.1}, samples, status)
    report = build_report(str(tmp_path / "sweep"), tmp_path / "report")
    assert "## In progress: 1 of 4 trials with rows have no end recorded yet" in report.text
    assert "| True | 0 | 20 | 4.00 ± 1.00 |" in report.text  # K = 0: both at the end
    assert "| True | 5 | 10 | 7.00 ± 1.00 |" in report.text  # K = 5: seed 0's 7 at step 20 is not mixed in
    figure = tmp_path / "report" / "progress.png"
    assert figure in report.files and figure.stat().st_size > 10_000
    final = {"modes": 9.0, "high_quality_pct": 9.0, "reverse_kl": 0.1}
    writers[5, 1].write(20, 2.0, final, {"model": np.zeros((4, 2))}, "finished")
    assert "In progress" not in build_report(str(tmp_path / "sweep"), tmp_path / "report2").text


def test_the_report_tables_the_gradient_probes_cosine_along_training_and_what_the_trials_cost(tmp_path):
    """K = 5, two seeds probed at steps 0, 10, 20 (K = 0 has no second term: no row); trial times 3,600 s and
    1,800 s at K = 5, 900 s at K = 0."""
    from analysis.report import build_report
    from trainables import experiments

    root = tmp_path / "sweep" / "parquet"
    cosines = {0: [0.5, -0.9, -1.0], 1: [0.1, -0.5, -0.8]}
    names = ["modes", "high_quality_pct", "reverse_kl", "grad_cosine"]
    for k, seed, total in ((5, 0, 3_600.0), (5, 1, 1_800.0), (0, 0, 900.0)):
        identity = TrialIdentity("s", "mog", "smoke", GridPoint((seed,), k, ()), True)
        config = experiments.get("mog").config("smoke", {"seed": seed, "unroll_steps": k}).to_json()
        w = ResultsWriter(str(root), identity, names, config)
        for i, step in enumerate((0, 10, 20)):
            cosine = cosines[seed][i] if k else float("nan")
            samples = {"model": np.zeros((4, 2)), **({"data": np.zeros((4, 2))} if step == 0 else {})}
            values = {"modes": 1.0, "high_quality_pct": 1.0, "reverse_kl": 0.1, "grad_cosine": cosine}
            w.write(step, total * i / 2, values, samples, "finished" if step == 20 else "running")
    text = build_report(str(tmp_path / "sweep"), tmp_path / "report").text
    assert "| second_order | unroll_steps | seeds | 0 | 10 | 20 |" in text
    assert "| True | 5 | 2 | 0.30 (0.10 to 0.50) | -0.70 (-0.90 to -0.50) | -0.90 (-1.00 to -0.80) |" in text
    assert "| True | 0 |" not in text.split("gradient probe")[1].split("**Cost**")[0]
    assert "**Cost**: 3 trials recorded 1.8 h of their own training time" in text
    assert "mean per trial K=0 0.25 h, K=5 0.75 h." in text
