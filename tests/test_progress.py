"""The driver's progress line: counts, and trials named by their grid point only."""

from types import SimpleNamespace

from orchestrator.progress import SweepProgress
from trainables.grid_point import GridPoint

POINT = GridPoint((1,), 10, (("d_size", 0.5),), config=(("iterations", 10000),))
CONFIG = {"grid_point": POINT.to_tune()}  # as the orchestrator's grid hands it


def test_progress_lines_name_trials_by_grid_point(capsys):
    progress = SweepProgress(3, headline=("modes",), every_s=0)
    running = SimpleNamespace(config=CONFIG, status="RUNNING")
    waiting = SimpleNamespace(config={"grid_point": {**CONFIG["grid_point"], "seed": 0}}, status="PENDING")
    unstarted = SimpleNamespace(config=None, status="PENDING")  # Tune has no config for a trial it never started
    progress.on_trial_result(
        0, [running, waiting, unstarted], running, {"step": 500, "iterations": 10000, "modes": 7.0}
    )
    progress.on_trial_complete(0, [running, waiting, unstarted], running)
    progress.on_trial_error(0, [running, waiting, unstarted], waiting)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(
        "0/3 done, 1 running, 0 errored | seed=1,unroll_steps=10,d_size=0.5: step 500/10000 modes=7"
    )
    assert lines[1].endswith("1/3 done, 0 running, 0 errored | finished seed=1,unroll_steps=10,d_size=0.5")
    assert lines[2].endswith("0/3 done, 1 running, 1 errored | ERROR in seed=0,unroll_steps=10,d_size=0.5")


def test_trials_start_longest_first_or_on_request_cheapest_first_in_the_order_tune_generates_them():
    from ray.tune.search.variant_generator import generate_variants

    from orchestrator import SweepSpec
    from orchestrator.sweep import start_order
    from trainables.ray_adapter import grid_config, trial_id_of

    spec = SweepSpec("stacked_mnist", "smoke", seeds=(0, 1), unroll_steps=(0, 10, 1), axes={"d_size": (0.25, 0.5)})
    grid = spec.resolved().grid_points()
    points = start_order(grid)
    assert [(p.unroll_steps, p.axis_values["d_size"], p.seed) for p in points[:3]] == [
        (10, 0.5, 0),
        (10, 0.5, 1),
        (10, 0.25, 0),
    ]
    assert [p.unroll_steps for p in points] == [10] * 4 + [1] * 4 + [0] * 4
    generated = [trial_id_of(config) for _, config in generate_variants(grid_config(points))]
    assert generated == [p.trial_id for p in points]  # Tune keeps the list's order
    assert len(set(generated)) == 12
    cheapest = start_order(grid, cheapest_first=True)
    assert [(p.unroll_steps, p.axis_values["d_size"], p.seed) for p in cheapest[:3]] == [
        (0, 0.25, 0),
        (0, 0.25, 1),
        (0, 0.5, 0),
    ]
    assert [p.unroll_steps for p in cheapest] == [0] * 4 + [1] * 4 + [10] * 4
