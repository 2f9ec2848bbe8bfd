"""Summary tables: a seed with no value is counted and named, never dropped from view."""

import math

import pandas as pd

from analysis.results import mean_and_standard_error
from analysis.tables import significance_markdown, summary_cells


def test_a_collapsed_seed_is_counted_not_silently_left_out_of_the_mean():
    final = pd.DataFrame(
        {
            "unroll_steps": [0] * 5 + [10] * 5,
            "reverse_kl": [math.nan, math.nan, math.nan, 2.0, 2.2, 0.01, 0.02, 0.03, 0.02, 0.02],
        }
    )
    summary = mean_and_standard_error(final, ["unroll_steps"], ["reverse_kl"])
    assert summary["reverse_kl_n"].tolist() == [2, 5]
    assert summary["reverse_kl_missing"].tolist() == [3, 0]
    cells = summary_cells(summary, "reverse_kl", 3, "collapsed")
    assert cells == ["2.100 ± 0.100 (2 seeds; 3 collapsed)", "0.020 ± 0.003"]


def test_every_seed_missing_reads_na_with_the_count():
    summary = mean_and_standard_error(pd.DataFrame({"k": [0, 0], "kl": [math.nan, math.nan]}), ["k"], ["kl"])
    assert summary_cells(summary, "kl", missing_means="collapsed") == ["n/a (0 seeds; 2 collapsed)"]


def test_the_significance_table_has_a_row_per_axis_value_and_k_sorted_and_warns_of_few_seeds():
    tests = pd.DataFrame(
        [
            {
                "d_size": d,
                "unroll_steps": k,
                "metric": m,
                "seeds": n,
                "baseline_seeds": 5,
                "p": p,
                "claimed": "higher",
                "supported": p < 0.05,
            }  # fmt: skip
            for d, k, n, p in [(0.5, 5, 5, 0.008), (0.25, 10, 5, 0.3), (0.25, 5, 3, 0.1)]
            for m in ("modes", "kl")
        ]
    )
    text = significance_markdown(tests, {"modes": "modes", "kl": "KL"}, axes=("d_size",))
    lines = text.splitlines()
    assert lines[0] == "| d_size | unroll steps vs K = 0 | modes | KL |"
    assert [line.split(" | ")[:2] for line in lines[2:5]] == [["| 0.25", "5"], ["| 0.25", "10"], ["| 0.5", "5"]]
    assert "p = 0.008 (5 vs 5 seeds), higher: supported" in lines[4]
    assert "p = 0.1 (3 vs 5 seeds), higher: not supported" in lines[2]
    assert "run at least 4 seeds" in text


def test_an_all_missing_metric_gets_a_no_data_panel_and_long_titles_wrap(tmp_path, monkeypatch):
    import matplotlib.image
    import numpy as np

    from analysis import figures

    frame = pd.DataFrame({"step": [0, 10, 0, 10], "seed": [0, 0, 1, 1], "modes": [1.0, 5.0, 2.0, 6.0],
                          "reverse_kl": [np.nan] * 4, "unroll_steps": [5] * 4})  # fmt: skip
    kept = {}
    real_save = figures.save
    monkeypatch.setattr(
        figures, "save", lambda fig, out, title: kept.setdefault("fig", fig) and real_save(fig, out, title)
    )
    out = figures.metric_curves(frame, ["modes", "reverse_kl"], tmp_path / "m.png", "x" * 20, hue="unroll_steps")
    modes, reverse_kl = kept["fig"].axes[:2]
    assert [t.get_text() for t in reverse_kl.texts] == ["no data"] and not reverse_kl.lines
    assert modes.lines and not modes.texts
    assert matplotlib.image.imread(out).shape[2] in (3, 4)  # a real PNG

    fig = figures.plt.figure(figsize=(3, 3))
    figures.save(fig, tmp_path / "t.png", "Recovered digit colours (R vs G) at the last step, all seeds: model vs data")
    assert "\n" in fig._suptitle.get_text()  # wrapped to a one-panel figure's width, not cut at its edges


def test_seed_trajectories_draw_a_panel_per_configuration(tmp_path):
    import struct

    from analysis import figures

    rows = [
        {
            "seed": s,
            "unroll_steps": k,
            "step": step,
            "modes": 10.0 * s + k + step / 1000,
            "weight_init": init,
            "kl": 1.0 + s,
            "grad_cosine": -0.9 if k else None,
        }
        for s in (0, 1)
        for k in (0, 5)
        for step in (0, 1000, 2000)
        for init in ("dcgan", "pytorch")
    ]
    frame = pd.DataFrame(rows)

    def size(path):
        return struct.unpack(">II", path.read_bytes()[16:24])  # the PNG header's image width and height

    marks = {"modes": {0: 30.6, 5: 236.4}}
    one = figures.seed_trajectories(frame[frame.weight_init == "dcgan"], ["modes"], [], tmp_path / "a.png", "t")
    two = figures.seed_trajectories(frame, ["modes"], ["weight_init"], tmp_path / "b.png", "t", marks)
    three = figures.seed_trajectories(frame, ["modes", "kl", "grad_cosine"], ["weight_init"], tmp_path / "c.png", "t")
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in (one, two, three))
    assert size(two)[0] > 1.8 * size(one)[0]  # a panel per configuration
    assert size(three)[0] == size(two)[0] and size(three)[1] > 2.5 * size(two)[1]  # a row per metric
    # Rows written before a field existed (no value for it) get a panel of their own, not dropped.
    older = frame.assign(weight_init=frame["weight_init"].where(frame["seed"] == 0))
    four = figures.seed_trajectories(older, ["modes"], ["weight_init"], tmp_path / "d.png", "t")
    assert size(four)[0] > 2.7 * size(one)[0]


def test_the_batch_norm_note_names_every_setting_a_sweep_varies():
    import json

    from analysis.notes import batchnorm_note

    plain = json.dumps({"d_batchnorm": True, "d_batchnorm_first": False, "weight_init": "dcgan"})
    other = json.dumps({"d_batchnorm": False, "weight_init": "pytorch"})
    one = batchnorm_note(pd.Series([plain, plain]))
    assert one.startswith("Discriminator: batch norm") and "PyTorch" not in one
    both = batchnorm_note(pd.Series([plain, other, plain]))
    assert both.startswith("This sweep varies") and "**no batch norm**" in both and "DCGAN's initialisation" in both
    assert "PyTorch's default initialisation" in both
