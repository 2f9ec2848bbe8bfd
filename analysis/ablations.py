"""The paper's Appendix B ablations as report tables: which study a sweep ran, and its finding tested.

A study is recognised from the trials' configs (the fields are shared by every experiment):
(a) historical averaging varies ``d_ensemble_size``/``d_ensemble_every``; (b) the second gradient
varies ``second_order``/``average_over_unroll`` at one generator step per D step; (c) runs
``generator_steps`` > 1. Each comparison is a two-sided exact Mann-Whitney U test across seeds
(``stats.against_baseline``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .results import ENDED_EARLY, final_rows, mean_and_standard_error
from .stats import against_baseline
from .tables import significance_cell, summary_cells, to_markdown

ABLATION_FIELDS = ("d_ensemble_size", "d_ensemble_every", "average_over_unroll", "generator_steps")


def setting_label(config: dict) -> str:
    """A trial's setting in words, e.g. "K=5, stop-grad averaged over K", "N=10 Ds every S=100"."""
    label = f"K={config['unroll_steps']}"
    if config["unroll_steps"] and not config["second_order"]:
        label += ", stop-grad averaged over K" if config.get("average_over_unroll") else ", stop-grad"
    size, every = config.get("d_ensemble_size", 1), config.get("d_ensemble_every", 1)
    if size > 1 or every > 1:
        label += f", ensemble of N={size} Ds every S={every}"
    if config.get("generator_steps", 1) > 1:
        label += f", {config['generator_steps']} G steps per D step"
    return label


def with_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with a ``setting`` column (the label above) and the ablation fields from their configs."""
    configs = [json.loads(text) for text in frame["config_json"]]
    extra = {name: [c.get(name) for c in configs] for name in ABLATION_FIELDS}
    return frame.assign(setting=[setting_label(c) for c in configs], **{k: v for k, v in extra.items()})


@dataclass(frozen=True)
class Study:
    title: str
    finding: str
    """The paper's finding, as the table states it."""


STUDIES = {
    "history": Study(
        "Appendix B (a): historical averaging (G trains against an ensemble of past discriminators)",
        "ensembles sampled with longer delays (larger S) made training less stable, until it diverged. "
        "Tested: each S > 1 against S = 1 at the same N, claimed lower (modes, high quality) or higher "
        "(reverse KL); each ensemble against the plain GAN is shown without a claimed direction",
    ),
    "second_gradient": Study(
        "Appendix B (b): the second gradient (full unroll, stop-gradient, stop-gradient averaged over K)",
        "with the discriminator near its optimum, all three behave alike. Tested: each stop-gradient variant "
        "against the full unroll; a p >= 0.05 is consistent with the claim (with 5 seeds the test detects only "
        "large differences, so it is not proof of equality). Where the sweep has K = 0, each stop-gradient variant "
        "is also tested against it, claimed better, as the paper claims for unrolling",
    ),
    "generator_steps": Study(
        "Appendix B (c): several generator steps per discriminator step",
        "the discriminator now lags, and the second gradient matters: with it, far fewer unroll steps are "
        "needed to converge. Tested: at each K, the stop-gradient unroll against the full one, claimed worse",
    ),
}


def study_of(final: pd.DataFrame) -> str | None:
    """Which Appendix B study a sweep's final rows belong to, or None."""
    if ((final["d_ensemble_size"] > 1) | (final["d_ensemble_every"] > 1)).any():
        return "history"
    if (final["generator_steps"] > 1).any():
        return "generator_steps"
    # A stop-gradient unroll is the study even without a full one beside it: it is then tested against K = 0.
    if (~final["second_order"] & (final["unroll_steps"] > 0)).any() or final["average_over_unroll"].any():
        return "second_gradient"
    return None


def _comparisons(final: pd.DataFrame, study: str, claims: dict[str, int]) -> pd.DataFrame:
    """(setting, baseline) pairs of the study, each tested per metric."""
    alike, no_claim = dict.fromkeys(claims, 0), dict.fromkeys(claims)
    pieces = []

    def compare(rows: pd.DataFrame, baseline: str, metric_claims: dict[str, int]) -> None:
        if (rows["setting"] == baseline).any() and rows["setting"].nunique() > 1:
            tested = against_baseline(rows, metric_claims, by="setting", baseline=baseline)
            pieces.append(tested.assign(baseline=baseline))

    if study == "history":
        plain = final[(final["d_ensemble_size"] == 1) & (final["d_ensemble_every"] == 1)]
        for _, group in final[final["d_ensemble_size"] > 1].groupby("d_ensemble_size"):
            if not plain.empty:
                compare(pd.concat([plain, group[group["d_ensemble_every"] == 1]]), plain["setting"].iloc[0], no_claim)
            shortest = group[group["d_ensemble_every"] == group["d_ensemble_every"].min()]
            compare(group, shortest["setting"].iloc[0], {m: -d for m, d in claims.items()})
    elif study == "second_gradient":
        plain = final[final["unroll_steps"] == 0]
        for _, group in final[final["unroll_steps"] > 0].groupby("unroll_steps"):
            full = group[group["second_order"]]
            if not full.empty:
                compare(group, full["setting"].iloc[0], alike)
            # Each variant also against the plain GAN, in the paper's direction for unrolling: whether it still helps.
            for _, variant in group[~group["second_order"]].groupby("setting"):
                if not plain.empty:
                    compare(pd.concat([plain, variant]), plain["setting"].iloc[0], claims)
    else:
        for _, group in final.groupby("unroll_steps"):
            full = group[group["second_order"]]
            if not full.empty:
                compare(group, full["setting"].iloc[0], {m: -d for m, d in claims.items()})
    if not pieces:
        return pd.DataFrame()
    tests = pd.concat(pieces, ignore_index=True)
    return tests.drop_duplicates(["setting", "baseline", "metric"]).reset_index(drop=True)


def ablation_section(
    metrics: pd.DataFrame,
    claims: dict[str, int],
    columns: dict[str, tuple[str, int, str]],
    axes: tuple[str, ...] = (),
) -> tuple[str, dict]:
    """The study's Markdown section and its tables (``results``, ``tests``); ("", {}) if the sweep is no study.

    `claims` maps a metric to the direction unrolling is claimed to move it (+1 higher, -1 lower);
    each study turns that into its own claims. `columns` maps a metric to its column label, decimal
    places and what a missing value means (e.g. "collapsed"). Diverged trials count per setting.
    `axes` are the experiment's model axes (e.g. D size): settings are compared within one value of them.
    """
    final_all = with_settings(final_rows(metrics, include_ended_early=True))
    study = study_of(final_all)
    if study is None:
        return "", {}
    varied = [a for a in axes if final_all[a].nunique() > 1]
    for axis in varied:
        final_all = final_all.assign(setting=final_all["setting"] + f", {axis}=" + final_all[axis].astype(str))
    final = final_all[~final_all["status"].isin(ENDED_EARLY)]
    summary = mean_and_standard_error(final, ["setting"], list(columns))
    counts = final_all.groupby("setting").agg(
        seeds=("seed", "size"), diverged=("status", lambda s: int((s == "diverged").sum()))
    )
    summary = summary.merge(counts, left_on="setting", right_index=True, how="outer").fillna({"seeds": 0})
    results = pd.DataFrame(
        {
            "setting": summary["setting"],
            "seeds": summary["seeds"].astype(int),
            "diverged": summary["diverged"].astype(int),
            **{label: summary_cells(summary, m, places, meaning) for m, (label, places, meaning) in columns.items()},
        }
    )
    groups = final.groupby(varied) if varied else [((), final)]
    pieces = [tested for _, group in groups if len(tested := _comparisons(group, study, claims))]
    tests = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()
    text = [f"### {STUDIES[study].title}", to_markdown(results)]
    if len(tests):
        shown = tests.assign(result=[significance_cell(r) for r in tests.itertuples()])
        wide = shown.pivot_table(index=["setting", "baseline"], columns="metric", values="result", aggfunc="first")
        wide = wide.reset_index()[["setting", "baseline", *[m for m in claims if m in wide.columns]]]
        wide = wide.rename(columns={m: label for m, (label, _, _) in columns.items()})
        text += [
            f"The paper's finding: {STUDIES[study].finding}. Two-sided exact Mann-Whitney U across seeds; "
            "supported = p < 0.05 in the claimed direction. Diverged trials have no final metrics and are "
            "counted in the 'diverged' column instead. The ensemble sizes N, delays S and unroll steps K of "
            "these studies are reasoned values: the paper prints none of them.",
            to_markdown(wide.rename(columns={"baseline": "against"})),
        ]
    return "\n\n".join(text), {"results": results, "tests": tests}


def ablation_report(
    metrics: pd.DataFrame,
    claims: dict[str, int],
    columns: dict[str, tuple[str, int, str]],
    out: Path,
    files: list[Path],
    axes: tuple[str, ...] = (),
) -> str:
    """``ablation_section``'s text, its tables written to `out`/ablation_<name>.csv (appended to `files`)."""
    text, tables = ablation_section(metrics, claims, columns, axes)
    for name, frame in tables.items():
        if len(frame):
            frame.to_csv(out / f"ablation_{name}.csv", index=False)
            files.append(out / f"ablation_{name}.csv")
    return text


def with_ablation(text: str, ablation: str) -> str:
    """An experiment's report text with the Appendix B section after it, when the sweep ran one."""
    return f"{text}\n\n{ablation}" if ablation else text
