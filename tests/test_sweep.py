"""End to end on a real local Ray: sweep -> Parquet -> report, resume, and numbers equal to a run without Ray."""

import json
import math
import shutil

import pandas as pd
import pytest
from conftest import assert_report_stands_alone, build_report_without_torch

from analysis.report import build_report
from analysis.results import load_metrics, load_samples
from orchestrator import SweepError, SweepSpec, run_sweep
from orchestrator import sweep as sweep_module
from trainables import experiments
from trainables.trial import Trial

SPEC = dict(experiment="mog", profile="smoke", seeds=(0, 1), unroll_steps=(0, 2))


@pytest.fixture(scope="module")
def sweep(ray_local, tmp_path_factory):
    storage = tmp_path_factory.mktemp("results")
    result = run_sweep(SweepSpec(**SPEC, storage=str(storage)), progress=False)
    return storage, result


def test_every_trial_finishes_and_every_row_is_written_once(sweep):
    storage, result = sweep
    assert result.ok and result.finished == 4 and not result.resumed
    metrics = load_metrics(result.path)
    assert len(metrics) == 4 * 3
    assert metrics.groupby(["seed", "unroll_steps"])["step"].apply(list).tolist() == [[0, 20, 40]] * 4
    assert metrics["node_id"].str.len().min() > 0
    assert set(metrics["sweep"]) == {"mog-smoke"} and set(metrics["profile"]) == {"smoke"}


def test_ray_trials_give_the_numbers_of_the_same_trial_without_ray(sweep):
    _, result = sweep
    metrics = load_metrics(result.path)
    row = metrics[(metrics["seed"] == 1) & (metrics["unroll_steps"] == 2)].iloc[-1]
    experiment = experiments.get("mog")
    config = experiment.config_type(**json.loads(row["config_json"]))
    *_, last = Trial(experiment, config).reports()
    for name in experiment.metrics:
        a, b = row[name], last.metrics[name]
        assert a == b or (math.isnan(a) and math.isnan(b)), name


def test_rerunning_a_finished_sweep_resumes_without_new_rows(sweep):
    storage, result = sweep
    files = sorted(p for p in (storage / "mog-smoke" / "parquet").rglob("*.parquet"))
    before = {p: p.stat().st_mtime_ns for p in files}
    again = run_sweep(SweepSpec(**SPEC, storage=str(storage)), progress=False)
    assert again.resumed and again.ok
    after = sorted(p for p in (storage / "mog-smoke" / "parquet").rglob("*.parquet"))
    assert after == files and all(p.stat().st_mtime_ns == before[p] for p in files)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _remove_tunes_files(folder):
    for path in folder.iterdir():
        if path.name not in ("sweep.json", "parquet", "trial_state"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


# Tune's own record of a run is never read back (each trial resumes from its own state), so a
# driver killed while Tune copied its files, or those files gone altogether, must not matter.
DAMAGE = {
    "Tune's files all gone": _remove_tunes_files,
    "Tune's experiment state truncated": lambda folder: [_truncate(p) for p in folder.glob("experiment_state-*.json")],
}


@pytest.mark.parametrize("trial_state", ["kept", "lost too"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_sweep_whose_tune_record_is_unusable_resumes_into_the_same_rows(sweep, tmp_path, damage, trial_state):
    storage, result = sweep
    shutil.copytree(storage / "mog-smoke", tmp_path / "mog-smoke")
    folder = tmp_path / "mog-smoke"
    DAMAGE[damage](folder)
    if trial_state == "lost too":
        shutil.rmtree(folder / "trial_state")
    before = load_metrics(str(folder))
    files = {p: p.stat().st_mtime_ns for p in (folder / "parquet").rglob("*.parquet")}

    again = run_sweep(SweepSpec(**SPEC, storage=str(tmp_path)), progress=False)
    assert again.resumed and again.ok and again.finished == 4, again.errors
    after = load_metrics(str(folder))
    assert len(after) == len(before) and not after.duplicated(["trial_id", "step"]).any()
    columns = ["trial_id", "step", *experiments.get("mog").metrics]
    assert after[columns].equals(before[columns])
    rewritten = [p for p, mtime in files.items() if p.stat().st_mtime_ns != mtime]
    # Every trial found its final state, or, without one, its last row written by its config: nothing trained twice.
    assert not rewritten
    assert len(list(folder.glob("trial_state/*.pt"))) == (0 if trial_state == "lost too" else 4)


def test_a_sweep_without_its_grid_on_record_resumes_and_records_it(sweep, tmp_path):
    # A driver killed by an older version between Tune's first write and the grid's.
    storage, _ = sweep
    shutil.copytree(storage / "mog-smoke", tmp_path / "mog-smoke")
    (tmp_path / "mog-smoke" / "sweep.json").unlink()
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "mog-smoke" / "parquet").rglob("*.parquet")}
    again = run_sweep(SweepSpec(**SPEC, storage=str(tmp_path)), progress=False)
    assert again.resumed and again.ok and again.finished == 4
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in files.items())
    assert json.loads((tmp_path / "mog-smoke" / "sweep.json").read_text())["grid"]["seeds"] == [0, 1]


def test_the_grid_is_on_record_before_tune_writes_anything(ray_local, tmp_path, monkeypatch):
    # So a driver killed at any moment leaves a folder whose re-run is checked against its grid.
    seen = {}

    def killed_while_creating_the_tuner(*args, **kwargs):
        folder = tmp_path / "mog-smoke"
        seen["grid"] = json.loads((folder / "sweep.json").read_text())["grid"]
        ours = ("sweep.json", "driver.lock", "artifacts")
        seen["tune files"] = sorted(p.name for p in folder.iterdir() if p.name not in ours)
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_module, "_new_tuner", killed_while_creating_the_tuner)
    with pytest.raises(sweep_module.Interrupted):
        run_sweep(SweepSpec(**SPEC, storage=str(tmp_path)), progress=False)
    assert seen == {"grid": json.loads(json.dumps(SweepSpec(**SPEC).resolved().grid_identity())), "tune files": []}
    assert not [p for p in (tmp_path / "mog-smoke").iterdir() if p.name.startswith(".tmp-")]


def test_a_truncated_trial_state_is_named_and_on_request_set_aside_and_trained_again(sweep, tmp_path):
    storage, _ = sweep
    shutil.copytree(storage / "mog-smoke", tmp_path / "mog-smoke")
    folder = tmp_path / "mog-smoke"
    state = folder / "trial_state" / "seed=1,unroll_steps=2.pt"
    state.write_bytes(state.read_bytes()[:100])  # a disk that filled up mid-write, say
    before = load_metrics(str(folder)).sort_values(["trial_id", "step"]).reset_index(drop=True)
    files = {p: p.stat().st_mtime_ns for p in (folder / "parquet").rglob("*.parquet")}
    # Its last rows gone too, as if the state broke mid-run (a trial finished by its rows needs no state).
    last = [p for p in files if p.name == "seed=1,unroll_steps=2-000000040.parquet"]
    assert len(last) == 2  # metrics and samples
    for path in last:
        path.unlink()

    with pytest.raises(SweepError, match=r"trial state .*seed=1,unroll_steps=2\.pt cannot be read .*--discard"):
        run_sweep(SweepSpec(**SPEC, storage=str(tmp_path)), progress=False)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in files.items() if p not in last)  # nothing touched

    again = run_sweep(SweepSpec(**SPEC, storage=str(tmp_path)), progress=False, discard_corrupt_state=True)
    assert again.ok and again.finished == 4
    assert [p.name.split(".pt")[0] for p in (folder / "trial_state" / "corrupt").iterdir()] == ["seed=1,unroll_steps=2"]
    after = load_metrics(str(folder)).sort_values(["trial_id", "step"]).reset_index(drop=True)
    assert len(after) == len(before) and not after.duplicated(["trial_id", "step"]).any()  # once per (trial, step)
    retrained = [p for p, mtime in files.items() if p.stat().st_mtime_ns != mtime]
    assert retrained and all("seed=1,unroll_steps=2-" in p.name for p in retrained)
    metric_columns = ["step", "modes", "high_quality_pct", "d_loss", "g_loss"]
    pd.testing.assert_frame_equal(after[metric_columns], before[metric_columns])  # deterministic by seed


def test_a_name_whose_earlier_run_never_trained_takes_a_new_grid(ray_local, tmp_path, monkeypatch):
    # An earlier run refused or killed before any trial trained leaves only its grid record: that must
    # not lock the name (the next ordinary command would be refused for a grid nothing was run with).
    grids = []

    def killed_while_creating_the_tuner(*args, **kwargs):
        grids.append(json.loads((tmp_path / "mog-smoke" / "sweep.json").read_text())["grid"]["seeds"])
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_module, "_new_tuner", killed_while_creating_the_tuner)
    for seeds in ((0, 1, 2), (0, 1)):
        with pytest.raises(sweep_module.Interrupted):
            run_sweep(SweepSpec(**{**SPEC, "seeds": seeds}, storage=str(tmp_path)), progress=False)
    assert grids == [[0, 1, 2], [0, 1]]


def test_a_changed_grid_under_the_same_name_is_refused_and_nothing_is_touched(sweep):
    storage, _ = sweep
    spec_file = storage / "mog-smoke" / "sweep.json"
    before = spec_file.read_bytes()
    with pytest.raises(SweepError, match="different seeds"):
        run_sweep(SweepSpec(**{**SPEC, "seeds": (0, 1, 2)}, storage=str(storage)), progress=False)
    assert spec_file.read_bytes() == before


def test_report_renders_table_and_png_figures(sweep, tmp_path):
    _, result = sweep
    report = build_report(result.path, tmp_path)
    assert build_report_without_torch(result.path, tmp_path / "again").strip() == report.text.strip()
    assert "| 2 | True | 2 |" in report.text  # K=2 row with both seeds
    assert "| unroll steps vs K = 0 | modes | high_quality_pct | reverse_kl |" in report.text
    significance = pd.read_csv(tmp_path / "significance.csv")
    assert significance["metric"].tolist() == ["modes", "high_quality_pct", "reverse_kl"]
    assert (significance["seeds"] <= 2).all() and not significance["supported"].any()  # 2 seeds cannot show it
    assert "VEEGAN (Srivastava et al., NIPS 2017, Table 1)" in report.text
    assert_report_stands_alone(report)
    for name in ("figure1_samples.png", "metrics_over_steps.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert csv[0].startswith("unroll_steps,second_order,modes_mean,modes_se,modes_n") and len(csv) == 3
    assert len(load_samples(result.path, kind="data")) == 4 * 256


def test_stacked_mnist_smoke_sweep_to_table_1(ray_local, tmp_path):
    result = run_sweep(SweepSpec("stacked_mnist", "smoke", storage=str(tmp_path)), progress=False)
    assert result.ok and result.finished == 2
    metrics = load_metrics(result.path)
    assert sorted(metrics["d_size"].unique()) == [0.25]
    assert metrics.groupby("unroll_steps")["step"].apply(list).tolist() == [[0, 3, 6]] * 2
    assert metrics["modes"].between(1, 1000).all() and metrics["kl"].between(0, math.log(1000)).all()
    assert metrics["channel_correlation"].between(-1, 1).all()
    # Every trial read the data and the classifier the driver published, checked by hash.
    manifest = json.loads((tmp_path / "stacked_mnist-smoke" / "artifacts" / "manifest.json").read_text())
    assert set(manifest) == {"classifier", "mnist"} and manifest["classifier"]["variant"] == "quick"
    expected = {name: entry["sha256"] for name, entry in manifest.items()}
    assert [json.loads(a) for a in metrics["artifacts_json"].unique()] == [expected]
    report = build_report(result.path, tmp_path / "report")
    assert f"the one the driver published (sha256 {expected['classifier'][:12]}…)" in report.text
    assert "D = 1/4 G" in report.text and "paper: 30.6 ± 20.73" in report.text
    assert "channel corr. " in report.text and "0.32 on real Stacked MNIST" in report.text
    assert_report_stands_alone(report)
    assert (tmp_path / "report" / "samples.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report" / "modes_per_seed.png").read_bytes()[:4] == b"\x89PNG"
    assert "d_size" in (tmp_path / "report" / "table1.csv").read_text().splitlines()[0]
    assert "| d_size | unroll steps vs K = 0 | modes | KL |" in report.text
    assert pd.read_csv(tmp_path / "report" / "significance.csv")["metric"].tolist() == ["modes", "kl"]


def test_a_stop_gradient_stacked_mnist_sweep_reports_k0_in_table_1_and_the_variant_against_it(ray_local, tmp_path):
    # `--set second_order=false` marks every trial stop-gradient, K = 0 too (where it changes nothing).
    spec = SweepSpec("stacked_mnist", "smoke", overrides={"second_order": False}, storage=str(tmp_path))
    result = run_sweep(spec, progress=False)
    assert result.ok and result.finished == 2
    report = build_report(result.path, tmp_path / "report")
    table = pd.read_csv(tmp_path / "report" / "table1.csv")
    assert table["unroll_steps"].tolist() == [0]  # the paper's table: K = 0, and no unrolled stop-gradient row
    assert "Appendix B (b): the second gradient" in report.text and "| K=1, stop-grad | 1 | 0 |" in report.text
    tests = pd.read_csv(tmp_path / "report" / "ablation_tests.csv")
    assert set(zip(tests["setting"], tests["baseline"])) == {("K=1, stop-grad", "K=0")}
    assert tests.set_index("metric")["claimed"].to_dict() == {"modes": "higher", "kl": "lower"}
    assert_report_stands_alone(report)


@pytest.mark.parametrize(
    "experiment, table, figures",
    [
        ("color_mnist", "table2.csv", ["colours.png"]),
        ("rnn_mnist", "collapse.csv", ["figure2_samples.png", "collapse_over_steps.png"]),
    ],
)
def test_mnist_experiments_smoke_sweep_to_report(ray_local, tmp_path, experiment, table, figures):
    result = run_sweep(SweepSpec(experiment, "smoke", storage=str(tmp_path)), progress=False)
    assert result.ok and result.finished == 2
    metrics = load_metrics(result.path)
    assert len(metrics) == 2 * 3 and not metrics.duplicated(["trial_id", "step"]).any()
    text = build_report_without_torch(result.path, tmp_path / "report")
    assert (tmp_path / "report" / table).exists() and text.startswith("# Report")
    if experiment == "color_mnist":  # K = 1 against K = 0, claimed worse (the paper's reading)
        tests = pd.read_csv(tmp_path / "report" / "significance.csv")
        assert tests["unroll_steps"].tolist() == [1, 1] and tests["claimed"].tolist() == ["higher", "lower"]
    if experiment == "rnn_mnist":  # K = 1 against K = 0, claimed to spread the labels (Figure 2)
        tests = pd.read_csv(tmp_path / "report" / "significance.csv")
        assert tests["metric"].tolist() == ["label_entropy", "top_label_pct"]
        assert tests["claimed"].tolist() == ["higher", "lower"] and "Mann-Whitney" in text
    assert_report_stands_alone(build_report(result.path, tmp_path / "report"))
    for name in figures:
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"


def test_image_smoke_sweep_on_mnist_to_table_3(ray_local, tmp_path):
    result = run_sweep(SweepSpec("image", "smoke", storage=str(tmp_path)), progress=False)
    assert result.ok and result.finished == 2
    metrics = load_metrics(result.path)
    last = metrics[metrics["step"] == 4]
    assert last["inference_mse"].notna().all() and metrics[metrics["step"] < 4]["inference_mse"].isna().all()
    report = build_report(result.path, tmp_path / "report")
    assert "Data used: **mnist**" in report.text and "percent best rank" in report.text
    assert_report_stands_alone(report)
    table = pd.read_csv(tmp_path / "report" / "table3.csv")
    assert abs(table["percent_best_rank_mean"].sum() - 100) < 1e-9  # within a seed every image has a winner
    assert (table["percent_best_rank_n"] == 1).all()
    for name in ("figure5_reconstructions.png", "figure8_pairwise_distances.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # two sweeps, one with a trial made to fail: ~40 s
def test_an_errored_trial_is_retried_by_the_rerun_and_finished_ones_are_not(ray_local, tmp_path):
    # A fault only the environment causes: a folder where one trial's step-20 file must go.
    partition = tmp_path / "mog-smoke" / "parquet" / "metrics" / "experiment=mog"
    blocker = partition / "seed=1,unroll_steps=2-000000020.parquet"
    (blocker / "in-the-way").mkdir(parents=True)
    spec = SweepSpec(**SPEC, storage=str(tmp_path), max_failures=0)
    first = run_sweep(spec, progress=False)
    assert not first.ok and first.finished == 3 and len(first.errors) == 1
    assert first.errors[0].startswith("seed=1,unroll_steps=2: ")
    finished = {p: p.stat().st_mtime_ns for p in partition.glob("seed=*.parquet") if p.is_file()}
    assert len(finished) == 3 * 3 + 1  # three trials done, the failed one wrote step 0

    shutil.rmtree(blocker)
    again = run_sweep(spec, progress=False)
    assert again.resumed and again.ok and again.finished == 4
    metrics = load_metrics(str(tmp_path / "mog-smoke"))
    assert len(metrics) == 4 * 3 and not metrics.duplicated(["trial_id", "step"]).any()
    done_before = {p: t for p, t in finished.items() if not p.name.startswith("seed=1,unroll_steps=2")}
    assert all(p.stat().st_mtime_ns == t for p, t in done_before.items())  # finished trials were not rerun


def test_stderr_held_while_connecting_catches_what_cpp_code_writes_to_fd_2_and_gives_it_back(capfd):
    import os

    with sweep_module._stderr_held() as held:
        os.write(2, b"W gcs_client.cc: InvalidAuthToken\n")
    os.write(2, b"after\n")
    assert held.text == "W gcs_client.cc: InvalidAuthToken\n"
    assert capfd.readouterr().err == "after\n"


def test_a_diverging_trial_is_recorded_counted_and_not_retried(ray_local, tmp_path):
    # d_lr = 1e30: the first discriminator step sends its weights past float32's range, for certain.
    spec = SweepSpec(
        "mog", "smoke", seeds=(0,), unroll_steps=(0, 2), axes={"d_lr": (1e-4, 1e30)}, storage=str(tmp_path)
    )
    result = run_sweep(spec, progress=False)
    assert result.ok and result.finished == 4 and not result.errors
    assert sorted(result.diverged) == ["seed=0,unroll_steps=0,d_lr=1e+30 at step 1",
                                       "seed=0,unroll_steps=2,d_lr=1e+30 at step 1"]  # fmt: skip
    metrics = load_metrics(result.path)
    diverged = metrics[metrics["d_lr"] == 1e30]
    assert diverged.groupby("unroll_steps")["step"].apply(list).tolist() == [[0, 1]] * 2  # rows up to it
    assert diverged["status"].tolist() == ["running", "diverged"] * 2
    assert diverged[diverged["status"] == "diverged"][["modes", "high_quality_pct"]].isna().all().all()
    healthy = metrics[metrics["d_lr"] == 1e-4]
    assert healthy.groupby("unroll_steps")["status"].apply(list).tolist() == [["running", "running", "finished"]] * 2

    report = build_report(result.path, tmp_path / "report")
    assert "**Trials diverged (losses or weights became non-finite)**, left out of every mean" in report.text
    assert "2 (K=0: 1, K=2: 1)" in report.text
    assert "| 0 | True | 1 |" in report.text and "| 2 | True | 1 |" in report.text  # means over the healthy seed
    assert "nan" not in report.text.split("Published numbers")[0].lower()

    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "mog-smoke" / "parquet").rglob("*.parquet")}
    again = run_sweep(spec, progress=False)  # a diverged trial is a result: not retried
    assert again.ok and len(again.diverged) == 2
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in files.items())


def test_the_grid_layout_runs_and_reports_its_25_modes(ray_local, tmp_path):
    result = run_sweep(SweepSpec("mog", "grid-smoke", storage=str(tmp_path)), progress=False)
    assert result.ok and result.finished == 2
    report = build_report(result.path, tmp_path / "report")
    assert "Mixture of 25 Gaussians on a grid (std 0.05)" in report.text and "modes (of 25)" in report.text
    assert "PacGAN4: 24.8 ± 0.2 modes" in report.text
    assert load_metrics(result.path)["modes"].between(0, 25).all()


def test_variants_cross_the_grid_and_each_lands_in_its_own_rows(ray_local, tmp_path):
    # The second-gradient study's three variants are not a product of single fields.
    spec = SweepSpec("mog", "ablation-second-gradient", seeds=(0,), unroll_steps=(2,), storage=str(tmp_path))
    spec = SweepSpec(**{**spec.__dict__, "overrides": dict(iterations=20, report_every=10, snapshot_every=20,
                                                           batch_size=64, eval_samples=256)})  # fmt: skip
    result = run_sweep(spec, progress=False)
    assert result.ok and result.finished == 3
    final = load_metrics(result.path).groupby("trial_id").tail(1)
    assert sorted(zip(final["second_order"], final["average_over_unroll"])) == [
        (False, False),
        (False, True),
        (True, False),
    ]
    assert final["trial_id"].str.contains("second_order=").all()  # second_order: one column, still in the id
    # The stop-gradient variants follow different losses from the full unroll from the first step.
    assert final["g_loss"].nunique() == 3
    report = build_report(result.path, tmp_path / "report")
    assert "Appendix B (b): the second gradient" in report.text
    for setting in ("| K=2 |", "| K=2, stop-grad |", "| K=2, stop-grad averaged over K |"):
        assert setting in report.text
    tests = pd.read_csv(tmp_path / "report" / "ablation_tests.csv")
    assert set(tests["baseline"]) == {"K=2"} and set(tests["claimed"]) == {"alike"}


def test_packed_seeds_write_the_rows_and_states_of_unpacked_trials(sweep, tmp_path):
    # The module sweep ran SPEC one seed per trial; here seeds 0 and 1 share one Ray trial per K.
    storage, unpacked = sweep
    spec = SweepSpec(**SPEC, storage=str(tmp_path), seeds_per_trial=2)
    assert [(p.seeds, p.packed) for p in spec.resolved().tune_points()] == [((0, 1), True), ((0, 1), True)]
    result = run_sweep(spec, progress=False)
    assert result.ok and result.finished == 4
    mine, theirs = load_metrics(result.path), load_metrics(unpacked.path)
    assert list(mine.columns) == list(theirs.columns)
    assert sorted(mine["trial_id"].unique()) == sorted(theirs["trial_id"].unique())
    assert (mine["status"].groupby(mine["trial_id"]).last() == "finished").all()
    merged = mine.merge(theirs, on=["trial_id", "step"], suffixes=("", "_alone"))
    assert len(merged) == len(theirs)
    for metric in ("modes", "high_quality_pct", "d_loss", "g_loss"):
        pd.testing.assert_series_equal(
            merged[metric], merged[f"{metric}_alone"], check_names=False, rtol=1e-3, atol=1e-3
        )
    states = sorted(p.name for p in (tmp_path / "mog-smoke" / "trial_state").glob("*.pt"))
    assert states == sorted(f"{t}.pt" for t in theirs["trial_id"].unique())
    # Finished: a re-run resumes and writes nothing.
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "mog-smoke" / "parquet").rglob("*.parquet")}
    again = run_sweep(spec, progress=False)
    assert again.ok and again.resumed
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "mog-smoke" / "parquet").rglob("*.parquet")} == files


def test_status_counts_trials_from_the_rows_and_lists_sweeps_in_storage(sweep, capsys):
    from orchestrator.cli import main

    storage, result = sweep
    assert main(["status", result.path, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)  # alone on stdout
    assert status["grid_trials"] == 4 and status["counts"] == {
        "finished": 4, "running": 0, "stopped": 0, "diverged": 0, "not started": 0
    }  # fmt: skip
    assert status["driver"] == "none" and {t["step"] for t in status["trials"]} == {40}
    assert main(["status", str(storage)]) == 0
    assert capsys.readouterr().out.startswith("mog-smoke: mog/smoke, 4 trials: 4 finished; driver none")


def test_status_names_a_live_driver_and_a_dead_ones_lock_as_stale(sweep, tmp_path, capsys):
    import os
    import socket
    import time

    from orchestrator.cli import main

    storage, _ = sweep
    shutil.copytree(storage / "mog-smoke", tmp_path / "mog-smoke")
    lock = tmp_path / "mog-smoke" / "driver.lock"
    now = time.time()
    for pid, beat, expected in [(os.getpid(), now, "driver running on"), (os.getpid(), 0, "driver stale lock")]:
        lock.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started_at": now, "heartbeat_at": beat}))
        assert main(["status", str(tmp_path / "mog-smoke")]) == 0
        assert expected in capsys.readouterr().out.splitlines()[0]
