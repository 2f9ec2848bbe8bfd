"""The grid point: the one type that names a trial (its id, axis columns, cost order, packing split), as the
orchestrator builds it, Tune carries it and a Tune script's own config decodes into it."""

import json

from orchestrator import SweepSpec
from trainables import experiments
from trainables.grid_point import GridPoint, pack


def test_trial_ids_keep_the_format_state_files_and_rows_are_named_by():
    point = GridPoint((0,), 10, (("d_size", 0.25), ("beta2", 0.99)))
    # Axes sorted in the id (as every sweep before the grid point named its files), in column order elsewhere.
    assert point.trial_id == "seed=0,unroll_steps=10,beta2=0.99,d_size=0.25"
    assert point.axis_names == ["d_size", "beta2"]
    packed = GridPoint((0, 1, 2), 5, (("d_size", 0.5),), packed=True)
    assert packed.trial_id == "seeds=0+1+2,unroll_steps=5,d_size=0.5"
    assert [p.trial_id for p in packed.seed_points()] == [f"seed={s},unroll_steps=5,d_size=0.5" for s in (0, 1, 2)]


def test_a_point_survives_tunes_json_and_a_tune_scripts_config_decodes():
    point = GridPoint((3,), 5, (("d_size", 0.25),), config=(("iterations", 100), ("g_lr", 1e-3)))
    config = json.loads(json.dumps({"grid_point": point.to_tune()}))  # Tune keeps configs as JSON
    assert GridPoint.from_tune(config) == point
    assert point.fields(7) == {"iterations": 100, "g_lr": 1e-3, "d_size": 0.25, "unroll_steps": 5, "seed": 7}
    # A Tune script's own fields: the experiment's axes from its resolved config, the rest sorted, all columns.
    own = GridPoint.from_tune({"seed": 1, "g_lr": 1e-3, "beta1": 0.9}, ("d_size",), {"d_size": 0.5, "unroll_steps": 0})
    assert own.axes == (("d_size", 0.5), ("beta1", 0.9), ("g_lr", 1e-3)) and own.unroll_steps == 0
    assert GridPoint.from_tune({"seeds": [0, 1], "unroll_steps": 2}).packed


def test_packing_splits_each_setting_into_consecutive_seeds():
    points = [GridPoint((s,), k) for k in (0, 5) for s in range(5)]
    assert pack(points, 1) == points
    split = pack(points, 2)
    assert [(p.unroll_steps, p.seeds) for p in split] == [
        (0, (0, 1)), (0, (2, 3)), (0, (4,)), (5, (0, 1)), (5, (2, 3)), (5, (4,))
    ]  # fmt: skip
    assert all(p.packed for p in split)  # a leftover seed still trains as a packed trial, as its state expects


def test_the_most_expensive_points_start_first():
    points = [GridPoint((s,), k, (("d_size", d),)) for s in (1, 0) for k in (0, 5) for d in (0.25, 0.5)]
    ordered = sorted(points, key=GridPoint.cost_order)
    assert [(p.unroll_steps, p.axis_values["d_size"], p.seed) for p in ordered[:3]] == [
        (5, 0.5, 0),
        (5, 0.5, 1),
        (5, 0.25, 0),
    ]


def test_a_resolved_spec_holds_each_trials_whole_config():
    spec = SweepSpec(
        "stacked_mnist", "smoke", seeds=(0, 1), axes={"weight_init": ("dcgan", "pytorch")},
        overrides={"g_lr": 3e-4}, cpus_per_trial=2,
    ).resolved()  # fmt: skip
    experiment = experiments.get("stacked_mnist")
    assert spec.num_trials == len(spec.grid_points()) == 2 * 2 * 2
    for point in spec.grid_points():
        assert point.axis_names == ["d_size", "weight_init"]  # the experiment's axis first, then the sweep's
        expected = experiment.config(
            "smoke", {"g_lr": 3e-4, "torch_threads": 2, "weight_init": point.axis_values["weight_init"],
                      "seed": point.seed, "unroll_steps": point.unroll_steps},
        )  # fmt: skip
        assert experiment.config("smoke", point.fields()) == expected
