"""Report for Stacked MNIST: the paper's Table 1 beside ours, and generated samples per cell."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..ablations import ablation_report, with_ablation
from ..figures import image_grid, images, metric_curves, seed_trajectories
from ..notes import batchnorm_note, classifier_note
from ..results import (
    data_of_one_trial,
    final_rows,
    last_snapshots,
    load_samples,
    mean_and_standard_error,
    paper_method,
    varied_axes,
)
from ..stats import unroll_against_none
from ..tables import mean_pm_se, significance_section, write_markdown, write_table

# Metz et al.'s Table 1 as PacGAN (Lin et al. 2018, Table 3) reprinted it: (modes, ±), (KL, ±).
PAPER_TABLE_1 = {
    (0.25, 0): ((30.6, 20.73), (5.99, 0.42)),
    (0.25, 1): ((65.4, 34.75), (5.91, 0.14)),
    (0.25, 5): ((236.4, 63.30), (4.67, 0.43)),
    (0.25, 10): ((327.2, 74.67), (4.66, 0.46)),
    (0.5, 0): ((628.0, 140.9), (2.58, 0.75)),
    (0.5, 1): ((523.6, 55.77), (2.44, 0.26)),
    (0.5, 5): ((732.0, 44.98), (1.66, 0.09)),
    (0.5, 10): ((817.4, 37.91), (1.43, 0.12)),
}
SIZE_NAMES = {0.25: "D = 1/4 G", 0.5: "D = 1/2 G", 1.0: "D = G"}
CLAIMS = {"modes": +1, "kl": -1}
"""Table 1's direction with unrolling, against K = 0 at the same D size: more modes, lower KL."""


def per_seed_figure(metrics: pd.DataFrame, out: Path) -> Path:
    """Modes and KL of every seed along its run (and, with the gradient probe, the cosine between the generator
    gradient's two terms), a panel per configuration the sweep varied (D size and any other axis), the paper's
    Table 1 values dashed where they apply (D = 1/4 or 1/2 alone)."""
    panels = varied_axes(metrics)
    sizes = set(metrics["d_size"])
    table = {k: v for (d, k), v in PAPER_TABLE_1.items() if sizes == {d}}
    marks = {"modes": {k: v[0][0] for k, v in table.items()}, "kl": {k: v[1][0] for k, v in table.items()}}
    columns = ["modes", "kl"] + (["grad_cosine"] if metrics.get("grad_cosine", pd.Series()).notna().any() else [])
    title = "Modes and KL of each seed during training; dashed: the paper's Table 1 at full length" + (
        "; grad_cosine: the cosine between the generator gradient's two terms (-1: the second cancels the first)"
        if "grad_cosine" in columns
        else ""
    )
    return seed_trajectories(metrics, columns, panels, out / "modes_per_seed.png", title, marks)


def report(path: str, metrics: pd.DataFrame, out: Path) -> tuple[str, list[Path]]:
    final = final_rows(paper_method(metrics))
    # Sweeps written before the channel correlation was measured lack its column.
    columns = ["modes", "kl"] + (["channel_correlation"] if "channel_correlation" in final else [])
    summary = mean_and_standard_error(final, ["d_size", "unroll_steps"], columns)
    paper = [PAPER_TABLE_1.get((d, k)) for d, k in zip(summary["d_size"], summary["unroll_steps"])]
    summary["paper_modes"] = [p[0][0] if p else None for p in paper]
    summary["paper_modes_se"] = [p[0][1] if p else None for p in paper]
    summary["paper_kl"] = [p[1][0] if p else None for p in paper]
    summary["paper_kl_se"] = [p[1][1] if p else None for p in paper]
    files = write_table(summary, out, "table1")[:1]

    table = {"": []}
    for d_size, rows in summary.groupby("d_size"):
        table[""].append(SIZE_NAMES.get(d_size, f"D = {d_size} G"))
        for row in rows.itertuples():
            cell = (
                f"{mean_pm_se(row.modes_mean, row.modes_se, 1)} modes, KL {mean_pm_se(row.kl_mean, row.kl_se)}, "
                f"{row.modes_n + row.modes_missing} seeds"
                + (f" ({row.kl_missing} without KL)" if row.kl_missing else "")
            )
            if "channel_correlation_mean" in summary:
                cell += f", channel corr. {mean_pm_se(row.channel_correlation_mean, row.channel_correlation_se, 2)}"
            p = PAPER_TABLE_1.get((d_size, row.unroll_steps))
            if p:
                cell += f" (paper: {p[0][0]} ± {p[0][1]}, KL {p[1][0]} ± {p[1][1]})"
            table.setdefault(f"{row.unroll_steps} unroll steps", []).append(cell)
    length = len(table[""])
    shown = pd.DataFrame({k: v + [""] * (length - len(v)) for k, v in table.items()})
    markdown = write_markdown(shown, out / "table1.md", files)

    significance = significance_section(
        unroll_against_none(final, CLAIMS, axes=("d_size",)),
        out,
        files,
        "The paper's claim (Table 1): unrolling covers more of the 1000 modes and lowers KL(model ‖ data).",
        {"modes": "modes", "kl": "KL"},
        axes=("d_size",),
    )

    samples = load_samples(path)
    last = last_snapshots(samples)
    seed = int(final["seed"].min())
    cells = {}
    for trial in final[final["seed"] == seed].sort_values(["d_size", "unroll_steps"]).itertuples():
        chosen = last[last["trial_id"] == trial.trial_id]
        if len(chosen):
            cells[(SIZE_NAMES.get(trial.d_size, str(trial.d_size)), f"K={trial.unroll_steps}")] = images(chosen)
    cells[(next(iter(cells))[0] if cells else "data", "data")] = images(data_of_one_trial(samples))
    files.append(image_grid(cells, out / "samples.png", f"Generated samples at the last step (seed {seed}); data last"))
    curves = metrics.assign(
        setting=[f"{SIZE_NAMES.get(d, d)}, K={k}" for d, k in zip(metrics["d_size"], metrics["unroll_steps"])]
    )
    title = "Modes and KL during training (mean, 95% CI over seeds)"
    files.append(metric_curves(curves, ["modes", "kl"], out / "modes_over_steps.png", title))
    files.append(per_seed_figure(paper_method(metrics), out))

    config = json.loads(final["config_json"].iloc[0])
    text = "\n\n".join(
        [
            f"## Stacked MNIST, Table 1: modes (of 1000) and KL(model ‖ data), mean ± standard error over "
            f"{int(summary['modes_n'].max())} seed(s), after {int(final['step'].max())} iterations, "
            f"{config['eval_samples']} generated samples per model",
            markdown,
            significance,
            "Paper numbers: Metz et al.'s Table 1 as reprinted by PacGAN (Lin et al., NeurIPS 2018, Table 3), with "
            "its ± as printed (the paper does not say whether it is a standard error), from full-length training; "
            "the paper does not state how many samples it counted (PacGAN's re-implementation counts 25,600, VEEGAN "
            "26,000). A profile with fewer samples or iterations is not directly comparable.",
            f"Channels labelled by the `{config['classifier']}` MNIST classifier. {classifier_note(metrics)} "
            f"Reasoned defaults, not printed in the paper: iterations ({config['iterations']}; one iteration is one "
            f"discriminator and one generator update, two of the paper's 'steps'), {config['eval_samples']} evaluation "
            f"samples, the network details (PacGAN's re-implementation), and "
            + (
                "digits at MNIST's 28x28, as PacGAN keeps them."
                if config.get("image_size", 32) == 28
                else "digits padded from 28x28 to 32x32 with the background value (PacGAN keeps 28x28)."
            ),
            batchnorm_note(final["config_json"]),
        ]
        + (
            [
                "Channel corr.: the mean Pearson correlation between a generated image's three channels, 0.32 on "
                "real Stacked MNIST (three independent digits); near 1, every channel shows the same digit (grey)."
            ]
            if "channel_correlation_mean" in summary
            else []
        )
    )
    columns = {"modes": ("modes (of 1000)", 1, "without a value"), "kl": ("KL", 2, "without a value")}
    return with_ablation(text, ablation_report(metrics, CLAIMS, columns, out, files, axes=("d_size",))), files
