"""The driver's progress line: counts, and trials named by their grid point only."""

from types import SimpleNamespace

from orchestrator.progress import SweepProgress

CONFIG = {"grid_point": {"seed": 1, "unroll_steps": 10, "d_size": 0.5}}  # as the orchestrator's grid hands it


def test_progress_lines_name_trials_by_grid_point(capsys):
    progress = SweepProgress(2, headline=("modes",), every_s=0)
    running = SimpleNamespace(config=CONFIG, status="RUNNING")
    waiting = SimpleNamespace(config={"grid_point": {**CONFIG["grid_point"], "seed": 0}}, status="PENDING")
    progress.on_trial_result(0, [running, waiting], running, {"step": 500, "iterations": 10000, "modes": 7.0})
    progress.on_trial_complete(0, [running, waiting], running)
    progress.on_trial_error(0, [running, waiting], waiting)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(
        "0/2 done, 1 running, 0 errored | seed=1,unroll_steps=10,d_size=0.5: step 500/10000 modes=7"
    )
    assert lines[1].endswith("1/2 done, 0 running, 0 errored | finished seed=1,unroll_steps=10,d_size=0.5")
    assert lines[2].endswith("0/2 done, 1 running, 1 errored | ERROR in seed=0,unroll_steps=10,d_size=0.5")


def test_trials_start_longest_first_in_the_order_tune_generates_them():
    from ray.tune.search.variant_generator import generate_variants

    from orchestrator import SweepSpec
    from orchestrator.sweep import longest_first
    from trainables.ray_adapter import grid_config, trial_id_of

    spec = SweepSpec("stacked_mnist", "smoke", seeds=(0, 1), unroll_steps=(0, 10, 1), axes={"d_size": (0.25, 0.5)})
    points = longest_first(spec.resolved().grid_points())
    assert [(p["unroll_steps"], p["d_size"]) for p in points[:3]] == [(10, 0.5), (10, 0.5), (10, 0.25)]
    assert [p["unroll_steps"] for p in points] == [10] * 4 + [1] * 4 + [0] * 4
    generated = [trial_id_of(config) for _, config in generate_variants(grid_config(points))]
    assert generated == [trial_id_of(p) for p in points]  # Tune keeps the list's order
    assert len(set(generated)) == 12
