"""The Appendix B study tables: which study a sweep is, and each claim tested in the right direction."""

import json

import numpy as np
import pandas as pd

from analysis.ablations import ablation_section, setting_label, study_of, with_settings
from analysis.results import paper_method

CLAIMS = {"modes": +1, "high_quality_pct": +1, "reverse_kl": -1}
DIGITS = {
    "modes": ("modes", 2, "without a value"),
    "high_quality_pct": ("high quality %", 1, "without a value"),
    "reverse_kl": ("reverse KL", 3, "collapsed"),
}


def frame(settings: list[dict], values: dict, seeds=range(5), status=None) -> pd.DataFrame:
    """Final rows: one per (setting, seed); `values[i]` gives setting i's high-quality % per seed."""
    rows = []
    for i, config in enumerate(settings):
        for seed in seeds:
            full = {"unroll_steps": 0, "second_order": True, "average_over_unroll": False, "d_ensemble_size": 1,
                    "d_ensemble_every": 1, "generator_steps": 1, "seed": seed, **config}  # fmt: skip
            hq = values[i][seed]
            rows.append({"trial_id": f"{i}-{seed}", "step": 100, "seed": seed, "second_order": full["second_order"],
                         "unroll_steps": full["unroll_steps"], "config_json": json.dumps(full),
                         "status": (status or {}).get((i, seed), "finished"), "modes": hq / 10,
                         "high_quality_pct": hq, "reverse_kl": 1 / (1 + hq)})  # fmt: skip
    return pd.DataFrame(rows)


def test_labels_name_every_ablation_field():
    base = {"unroll_steps": 5, "second_order": False, "average_over_unroll": True}
    assert setting_label(base) == "K=5, stop-grad averaged over K"
    assert setting_label({"unroll_steps": 0, "second_order": True, "d_ensemble_size": 10, "d_ensemble_every": 100}) == (
        "K=0, ensemble of N=10 Ds every S=100"
    )
    assert setting_label({"unroll_steps": 1, "second_order": True, "generator_steps": 5}) == (
        "K=1, 5 G steps per D step"
    )


def test_each_study_is_recognised_and_a_plain_sweep_is_none():
    plain = frame([{"unroll_steps": 0}, {"unroll_steps": 10}], [np.arange(5)] * 2)
    assert study_of(with_settings(plain)) is None
    history = frame([{}, {"d_ensemble_size": 10}], [np.arange(5)] * 2)
    assert study_of(with_settings(history)) == "history"
    second = frame([{"unroll_steps": 5}, {"unroll_steps": 5, "second_order": False}], [np.arange(5)] * 2)
    assert study_of(with_settings(second)) == "second_gradient"
    five = {"unroll_steps": 1, "generator_steps": 5}
    steps = frame([five, {**five, "second_order": False}], [np.arange(5)] * 2)
    assert study_of(with_settings(steps)) == "generator_steps"
    assert ablation_section(plain, CLAIMS, DIGITS) == ("", {})


def test_longer_delays_worse_in_every_seed_support_the_history_claim_and_diverged_seeds_are_counted():
    settings = [{}, {"d_ensemble_size": 10}, {"d_ensemble_size": 10, "d_ensemble_every": 100}]
    hq = [np.full(5, 50.0), np.array([60, 61, 62, 63, 64.0]), np.array([10, 11, 12, 13, 14.0])]
    metrics = frame(settings, hq, status={(2, 4): "diverged"})
    metrics.loc[metrics["status"] == "diverged", ["modes", "high_quality_pct", "reverse_kl"]] = np.nan
    text, tables = ablation_section(metrics, CLAIMS, DIGITS)
    tests = tables["tests"].set_index(["setting", "baseline", "metric"])
    delayed = tests.loc[
        ("K=0, ensemble of N=10 Ds every S=100", "K=0, ensemble of N=10 Ds every S=1", "high_quality_pct")
    ]
    assert delayed["claimed"] == "lower" and delayed["supported"] and delayed["seeds"] == 4
    assert delayed["p"] == 2 / 126  # exact: 4 vs 5 seeds, complete separation, two-sided
    against_plain = tests.loc[("K=0, ensemble of N=10 Ds every S=1", "K=0", "high_quality_pct")]
    assert against_plain["claimed"] == "no direction" and not against_plain["supported"]
    results = tables["results"].set_index("setting")
    assert results.loc["K=0, ensemble of N=10 Ds every S=100", "diverged"] == 1
    assert "Appendix B (a)" in text and "| K=0, ensemble of N=10 Ds every S=100 | 5 | 1 |" in text


def test_second_gradient_variants_that_differ_are_reported_as_differing():
    settings = [
        {"unroll_steps": 5},
        {"unroll_steps": 5, "second_order": False},
        {"unroll_steps": 5, "second_order": False, "average_over_unroll": True},
    ]
    hq = [np.array([80, 81, 82, 83, 84.0]), np.array([80.5, 81.5, 82.5, 83.5, 79.0]), np.array([1, 2, 3, 4, 5.0])]
    text, tables = ablation_section(frame(settings, hq), CLAIMS, DIGITS)
    tests = tables["tests"].set_index(["setting", "metric"])
    assert tests.loc[("K=5, stop-grad", "high_quality_pct"), "supported"]  # alike: p large
    averaged = tests.loc[("K=5, stop-grad averaged over K", "high_quality_pct")]
    assert averaged["claimed"] == "alike" and not averaged["supported"] and averaged["p"] < 0.05
    assert ": differ" in text and ": alike" in text


def test_generator_steps_claim_is_tested_within_each_k():
    settings = [
        {"unroll_steps": k, "generator_steps": 5, "second_order": order} for k in (1, 5) for order in (True, False)
    ]
    hq = [np.full(5, 70.0) + np.arange(5), np.full(5, 10.0) + np.arange(5), np.arange(5.0), np.arange(5.0) + 0.5]
    _, tables = ablation_section(frame(settings, hq), CLAIMS, DIGITS)
    tests = tables["tests"]
    hq_tests = tests[tests["metric"] == "high_quality_pct"].set_index("baseline")
    assert set(hq_tests.index) == {"K=1, 5 G steps per D step", "K=5, 5 G steps per D step"}
    assert hq_tests.loc["K=1, 5 G steps per D step", "supported"]  # stop-grad worse at K=1
    assert not hq_tests.loc["K=5, 5 G steps per D step", "supported"]  # no difference at K=5
    assert set(hq_tests["claimed"]) == {"lower"}


def test_a_stop_gradient_sweep_is_tested_against_k0_even_without_a_full_unroll():
    # `--set second_order=false` marks the K = 0 trials stop-gradient too; without unrolling that means nothing.
    settings = [{"unroll_steps": 0, "second_order": False}, {"unroll_steps": 5, "second_order": False}]
    hq = [np.array([1, 2, 3, 4, 5.0]), np.array([40, 41, 42, 43, 44.0])]
    metrics = frame(settings, hq)
    assert study_of(with_settings(metrics)) == "second_gradient"
    text, tables = ablation_section(metrics, CLAIMS, DIGITS)
    tests = tables["tests"].set_index(["setting", "baseline", "metric"])
    against_plain = tests.loc[("K=5, stop-grad", "K=0", "high_quality_pct")]
    assert against_plain["claimed"] == "higher" and against_plain["supported"] and against_plain["p"] == 2 / 252
    assert tests.loc[("K=5, stop-grad", "K=0", "reverse_kl"), "claimed"] == "lower"
    assert "| K=5, stop-grad | K=0 |" in text


def test_stop_gradient_and_full_unroll_are_each_compared_within_one_model_size():
    settings = [
        {"unroll_steps": k, "second_order": order, "d_size": size}
        for size in (0.25, 0.5)
        for k, order in ((0, True), (5, True), (5, False))
    ]
    # At D = 1/4 the stop-gradient unroll beats both; at D = 1/2 all three are alike.
    low, high = np.arange(5.0), np.arange(5.0) + 50
    metrics = frame(settings, [low, low, high, high, high + 0.5, high])
    metrics["d_size"] = [json.loads(c)["d_size"] for c in metrics["config_json"]]
    _, tables = ablation_section(metrics, CLAIMS, DIGITS, axes=("d_size",))
    hq = tables["tests"][tables["tests"]["metric"] == "high_quality_pct"].set_index(["setting", "baseline"])
    assert set(hq.index) == {
        (f"K=5, stop-grad, d_size={size}", f"K={k}, d_size={size}") for size in (0.25, 0.5) for k in (0, 5)
    }
    assert hq.loc[("K=5, stop-grad, d_size=0.25", "K=0, d_size=0.25"), "supported"]
    assert not hq.loc[("K=5, stop-grad, d_size=0.5", "K=0, d_size=0.5"), "supported"]
    assert hq.loc[("K=5, stop-grad, d_size=0.25", "K=5, d_size=0.25"), "claimed"] == "alike"
    assert not hq.loc[("K=5, stop-grad, d_size=0.25", "K=5, d_size=0.25"), "supported"]  # they differ


def test_the_papers_tables_keep_k0_rows_whatever_their_second_order_flag():
    metrics = frame(
        [{"unroll_steps": 0, "second_order": False}, {"unroll_steps": 5}, {"unroll_steps": 5, "second_order": False}],
        [np.arange(5.0)] * 3,
    )
    kept = paper_method(metrics)
    assert sorted(set(zip(kept["unroll_steps"], kept["second_order"]))) == [(0, False), (5, True)]
