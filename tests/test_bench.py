"""The cost bench: one row per grid point and variant, and a projection that adds them up right."""

import json
import subprocess
import sys

import pytest
import torch

from bench.unroll_cost import measure


def test_rows_cover_the_profile_grid_and_the_projection_sums_them():
    rows, projection = measure("mog", "smoke", repeats=1, iterations=1)
    assert [(r["unroll_steps"], r["second_order"]) for r in rows] == [(0, True), (2, True), (2, False)]
    assert all(r["ms_per_iter"] > 0 for r in rows)
    # smoke: one seed, 40 iterations; only the second-order variant is what the sweep trains.
    expected = (rows[0]["ms_per_iter"] + rows[1]["ms_per_iter"]) * 1 * 40 / 3.6e6
    assert projection == {"trials": 2, "iterations_per_trial": 40, "hours": pytest.approx(expected)}


@pytest.mark.slow  # three bench runs in subprocesses: ~75 s
def test_further_axes_become_columns_and_bad_profiles_one_line():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.unroll_cost",
            "--experiment",
            "stacked_mnist",
            "--profile",
            "smoke",
            "--repeats",
            "1",
            "--iterations",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {r["d_size"] for r in result["rows"]} == {0.25} and result["projection"]["trials"] == 2
    bad = subprocess.run(
        [sys.executable, "-m", "bench.unroll_cost", "--profile", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown profile 'nope' for mog" in bad.stderr.splitlines()[-1]


def test_seed_packing_bench_has_a_row_per_k_and_s_with_its_speedup():
    from bench.seed_packing import measure as measure_packing

    rows = measure_packing("smoke", [0, 2], [1, 3], "cpu", repeats=1, iterations=1)
    assert [(r["unroll_steps"], r["seeds_per_trial"]) for r in rows] == [(0, 1), (0, 3), (2, 1), (2, 3)]
    for r in rows:
        assert r["speedup"] == r["lone_ms_per_seed_iter"] / r["packed_ms_per_seed_iter"] > 0


def test_gpu_check_runs_on_the_cpu_and_its_json_adds_up(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--quick", "--repeats", "1", "--iterations", "1",
         "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["environment"]["device"] == "cpu"
    assert result["resume"] == {"steps": [0, 10, 20, 30], "identical": True, "max_abs_diff": 0.0}
    assert result["float64_agreement"]["max_relative_diff"] == 0.0  # the CPU against itself
    assert [r["unroll_steps"] for r in result["mog_iteration"]] == [0, 1, 5, 10]
    assert all(r["eager_ms"] > 0 and r["draws_per_iteration_ms"] > 0 for r in result["mog_iteration"])
    assert [r["seeds_per_trial"] for r in result["packed_seeds"]] == [1, 2]
    assert [r["seeds_per_trial"] for r in result["stacked_packed_seeds"]] == [1, 2]
    assert all(r["seed_iterations_per_s"] > 0 for r in result["stacked_packed_seeds"])
    mog = result["projections"][0]
    hours = 5 * sum(r["eager_ms"] for r in result["mog_iteration"]) * 25_000 / 3.6e6
    assert mog["complete"] and mog["trials"] == 20 and mog["one_at_a_time_h"] == pytest.approx(hours)
    assert mog["side_by_side_h"] == pytest.approx(hours / 4)  # MoG asks for a quarter GPU per trial
    assert not result["projections"][1]["complete"]  # --quick times part of the Stacked MNIST grid
    assert "resume after 2nd report = uninterrupted      yes" in done.stdout
    assert result["cuda_graphs"]["note"] == "CUDA graphs need a CUDA device: not measured on cpu"
    assert "MoG iteration with CUDA graphs               CUDA graphs need a CUDA device" in done.stdout


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("module", ["bench.gpu_check", "bench.unroll_cost", "bench.seed_packing"])
def test_benches_refuse_cuda_without_it_in_one_line(module):
    done = subprocess.run([sys.executable, "-m", module, "--device", "cuda"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--device cuda: torch" in done.stderr.splitlines()[-1] and "sees no CUDA device" in done.stderr


@pytest.mark.parametrize(
    "experiment",
    ["mog", pytest.param("stacked_mnist", marks=pytest.mark.slow)],  # batch norm's running statistics: ~1 min
)
def test_second_gradient_bench_measures_both_terms_and_leaves_the_run_as_it_was(experiment):
    import torch

    from bench.second_gradient import probe_run
    from trainables import experiments
    from trainables.trainer import GANTrainer

    def trainer(unroll_steps: int) -> GANTrainer:
        config = experiments.get(experiment).config("smoke", {"unroll_steps": unroll_steps})
        torch.manual_seed(config.seed)
        return GANTrainer(experiments.get(experiment).build(config, torch.device("cpu")).parts, config)

    probed, plain = trainer(2), trainer(2)
    rows = probe_run(probed, iterations=6, every=3)
    assert [r["iteration"] for r in rows] == [0, 3, 6]
    assert all(r["first_norm"] > 0 and r["second_norm"] > 0 and -1 <= r["cosine"] <= 1 for r in rows)
    # The probes change nothing: a run without them ends on the same networks, running statistics included.
    plain.train(6)
    assert plain.last_losses == {k: rows[-1][k] for k in ("d_loss", "g_loss")}
    for name, value in plain.parts.generator.state_dict().items():
        assert torch.equal(value, probed.parts.generator.state_dict()[name]), name
    # Without unrolling there is no second term.
    flat = probe_run(trainer(0), iterations=0, every=1)
    assert flat[0]["second_norm"] == 0 and flat[0]["full_over_first"] == 1


def test_second_gradient_bench_refuses_a_bad_field_in_one_line():
    bad = subprocess.run(
        [sys.executable, "-m", "bench.second_gradient", "mog", "--set", "unroll_steps=-1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unroll_steps must be a non-negative integer" in bad.stderr.splitlines()[-1]


def test_the_gpu_checks_cuda_graph_rows_add_up_with_a_stand_in_for_the_graphs(capturable_adam_on_cpu):
    # Everything of the CUDA-graph rows but the capture itself (a CPU replay of the recorded operations).
    from graph_replay import ReplayGraph

    from bench.gpu_check import cuda_graph_check, graph_lines, projection
    from trainables import experiments

    eager = [{"unroll_steps": k, "eager_ms": 10.0 * (k + 1)} for k in (0, 1, 5, 10)]
    check = cuda_graph_check(torch.device("cpu"), eager, [2], 1, 5, backend_factory=ReplayGraph)
    assert check["measured"] and [r["unroll_steps"] for r in check["iteration"]] == [0, 1, 5, 10]
    for row, base in zip(check["iteration"], eager):
        assert row["graphs_ms"] > 0 and row["times_eager"] == base["eager_ms"] / row["graphs_ms"]
        assert row["max_abs_diff_to_eager"] == 0.0  # replays are the eager iterations, bit for bit
    assert [r["seeds_per_trial"] for r in check["packed_seeds"]] == [2]
    assert len(graph_lines(check)) == 5
    graphed = projection(experiments.get("mog"), check["iteration"], key="graphs_ms")
    assert graphed["path"] == "CUDA graphs" and graphed["complete"]
    assert cuda_graph_check(torch.device("cpu"), eager, [2], 1, 5) == {
        "measured": False, "note": "CUDA graphs need a CUDA device: not measured on cpu"
    }  # fmt: skip


def test_a_failing_gpu_check_section_is_one_line_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    # A GPU is lent for minutes: a row that fails there (a capture error, say) must not cost the rest.
    import bench.gpu_check as check

    def broken(device):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(check, "resume_check", broken)
    out = tmp_path / "check.json"
    with pytest.raises(SystemExit) as exit_info:
        check.main(["--device", "cpu", "--quick", "--repeats", "1", "--iterations", "1", "--out", str(out)])
    assert exit_info.value.code == 1
    result = json.loads(out.read_text())
    assert result["errors"] == {"resume": "RuntimeError: CUDA error: operation not permitted when stream is capturing"}
    assert {"float64_agreement", "mog_iteration", "packed_seeds", "projections"} <= set(result)
    printed = capsys.readouterr()
    assert "resume                                       FAILED: RuntimeError: CUDA error" in printed.out
    assert "MoG paper iteration, K=10, eager" in printed.out
    assert "1 section(s) failed: resume" in printed.err
    assert not (tmp_path / "check.json.partial").exists()


def test_the_gpu_check_saves_its_json_after_every_section(monkeypatch):
    import bench.gpu_check as check

    saved = []
    monkeypatch.setattr(check, "stacked_iteration_ms", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # the check stopped part way, as a device lease ending would
        check.run_check(torch.device("cpu"), 1, 1, True, save=lambda r: saved.append(json.loads(json.dumps(r))))
    assert [sorted(set(s) - {"environment", "settings", "errors", "wall_s"}) for s in saved][-1] == [
        "cuda_graphs", "float64_agreement", "mog_iteration", "packed_seeds", "resume", "stacked_packed_seeds"
    ]  # fmt: skip
    assert len(saved) == 6


def test_the_labelling_bench_times_both_paths_and_counts_agreeing_labels():
    out = subprocess.run(
        [sys.executable, "-m", "bench.labelling", "--variant", "quick", "--digits", "600", "--repeats", "1", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = json.loads(out)  # alone on stdout: the classifier's training lines go to stderr
    assert [r["path"] for r in rows] == ["as trained", "labeller"] and rows[0]["speedup"] == 1.0
    assert all(r["same_labels"] == r["digits"] == 600 and r["ms_per_1000_digits"] > 0 for r in rows)
