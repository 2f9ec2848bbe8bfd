"""The cost bench: one row per grid point and variant, and a projection that adds them up right."""

import json
import subprocess
import sys

import pytest

from bench.unroll_cost import measure


def test_rows_cover_the_profile_grid_and_the_projection_sums_them():
    rows, projection = measure("mog", "smoke", repeats=1, iterations=1)
    assert [(r["unroll_steps"], r["second_order"]) for r in rows] == [(0, True), (2, True), (2, False)]
    assert all(r["ms_per_iter"] > 0 for r in rows)
    # smoke: one seed, 40 iterations; only the second-order variant is what the sweep trains.
    expected = (rows[0]["ms_per_iter"] + rows[1]["ms_per_iter"]) * 1 * 40 / 3.6e6
    assert projection == {"trials": 2, "iterations_per_trial": 40, "hours": pytest.approx(expected)}


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
