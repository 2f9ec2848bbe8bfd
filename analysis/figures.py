"""Figures rendered to PNG (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def evenly_spaced(values: list, at_most: int) -> list:
    """At most `at_most` of the sorted values, always keeping the first and the last."""
    values = sorted(values)
    if len(values) <= at_most:
        return values
    picks = np.linspace(0, len(values) - 1, at_most).round().astype(int)
    return [values[i] for i in sorted(set(picks))]


def points(samples: pd.DataFrame) -> np.ndarray:
    return np.stack(samples["values"].to_numpy()).astype(np.float64)


ITERATION_AXIS = "iteration (1 D + 1 G update = 2 of the paper's steps)"
"""What the `step` column counts, for every axis that shows it (see ``notes.ITERATION_NOTE``)."""


def heatmap_grid(
    rows: dict[str, dict[int, np.ndarray]], data: np.ndarray, extent: float, out: Path, title: str
) -> Path:
    """Rows of 2-D sample histograms at increasing steps; the last column is the data (paper's Figure 1)."""
    steps = sorted({s for cells in rows.values() for s in cells})
    fig, axes = plt.subplots(
        len(rows), len(steps) + 1, figsize=(1.9 * (len(steps) + 1), 2.0 * len(rows)), squeeze=False
    )
    bins = np.linspace(-extent, extent, 101)
    for r, (label, cells) in enumerate(rows.items()):
        for c, step in enumerate(steps + ["data"]):
            ax = axes[r][c]
            xy = data if step == "data" else cells.get(step)
            if xy is not None:
                hist, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=[bins, bins])
                ax.imshow(
                    np.log1p(hist.T),
                    origin="lower",
                    extent=[-extent, extent, -extent, extent],
                    cmap="viridis",
                    interpolation="nearest",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("data" if step == "data" else f"iteration {step:,}", fontsize=9)
            if c == 0:
                # Ablation settings have long names: wrapped, so rows do not overprint each other.
                ax.set_ylabel(textwrap.fill(label, 22), fontsize=8)
    return save(fig, out, title)


def metric_curves(metrics: pd.DataFrame, columns: list[str], out: Path, title: str, hue: str = "setting") -> Path:
    """Each metric against training step, mean and 95% interval over seeds, one line per `hue` value."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        ax.set_title(column)
        ax.set_xlabel(ITERATION_AXIS)
        if metrics[column].isna().all():
            # An empty 0-1 frame would read as a measured zero.
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, fontsize=12, color="0.4")
            ax.set_xticks([]), ax.set_yticks([])
            continue
        sns.lineplot(data=metrics, x="step", y=column, hue=hue, errorbar=("ci", 95), ax=ax, palette="viridis")
    return save(fig, out, title)


def montage(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """[n, C, H, W] images in [-1, 1] -> one [rows*H, columns*W, C] picture in [0, 1] (C = 1 or 3)."""
    images = ((np.clip(images, -1, 1) + 1) / 2).transpose(0, 2, 3, 1)
    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.ones((rows * h, columns * w, c))
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * h : (r + 1) * h, col * w : (col + 1) * w] = image
    return canvas


def panel_grid(cells: dict[tuple[str, str], object], width: float, height: float):
    """Row and column labels in first-seen order, and a figure with one panel per (row, column)."""
    rows = list(dict.fromkeys(r for r, _ in cells))
    columns = list(dict.fromkeys(c for _, c in cells))
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(width * len(columns), height * len(rows)), squeeze=False)
    return rows, columns, fig, axes


def seed_trajectories(
    metrics: pd.DataFrame,
    columns: list[str],
    panels: list[str],
    out: Path,
    title: str,
    marks: dict[str, dict[int, float]] | None = None,
) -> Path:
    """Each of `columns` against training step (a row of panels per column), one line per seed, one colour per
    unroll setting, one panel per value of the `panels` columns (a configuration); `marks[column]` draws a reference
    value per K (e.g. the paper's) as a dashed line. Every seed is drawn, so a mean never hides a seed that collapsed
    or one that took off."""
    # dropna=False: rows written before a field existed have no value for it and still get their panel.
    groups = list(metrics.groupby(panels, sort=True, dropna=False)) if panels else [((), metrics)]
    unrolls = sorted(metrics["unroll_steps"].unique())
    colours = dict(zip(unrolls, sns.color_palette("deep", len(unrolls))))
    fig, axes = plt.subplots(
        len(columns), len(groups), figsize=(3.8 * len(groups), 0.4 + 2.8 * len(columns)), squeeze=False, sharey="row"
    )
    for r, (row, column) in enumerate(zip(axes, columns)):
        for ax, (key, group) in zip(row, groups):
            key = key if isinstance(key, tuple) else (key,)
            if r == 0:
                ax.set_title(", ".join(f"{name}={value}" for name, value in zip(panels, key)), fontsize=9)
            for (k, _), run in group.sort_values("step").groupby(["unroll_steps", "seed"]):
                # A metric measured only for some K (the gradient probe's, with K > 0) leaves the others unplotted.
                if run[column].notna().any():
                    ax.plot(run["step"], run[column], color=colours[k], alpha=0.8, linewidth=1.2)
            for k, value in (marks or {}).get(column, {}).items():
                if k in colours:
                    ax.axhline(value, color=colours[k], linestyle="--", linewidth=1)
        row[0].set_ylabel(column)
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    handles = [plt.Line2D([], [], color=colours[k], label=f"K={k}") for k in unrolls]
    if marks:
        handles.append(plt.Line2D([], [], color="0.3", linestyle="--", label="paper"))
    axes[0][-1].legend(handles=handles, fontsize=8)
    return save(fig, out, title)


def lineages(metrics: pd.DataFrame, column: str, out: Path, title: str) -> Path:
    """`column` against step, one colour per member of a checkpoint scheduler's population; each later generation
    is drawn from its parent's point (dotted), so an exploit shows as the jump it is."""
    members = sorted(metrics["trial_id"].str.extract(r"member=([^,]+)")[0].unique())
    colours = dict(zip(members, sns.color_palette("husl", len(members))))
    rows = {(r.trial_id, r.step): r for r in metrics.itertuples()}
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for trial_id, run in metrics.sort_values("step").groupby("trial_id"):
        colour = colours[trial_id.split(",")[0].removeprefix("member=")]
        ax.plot(run["step"], run[column], color=colour, linewidth=1.4, marker=".")
        first = run.iloc[0]
        parent = rows.get((first["parent"], first["parent_step"]))
        if parent is not None:
            ax.plot([parent.step, first["step"]], [getattr(parent, column), first[column]], color=colour, linestyle=":")
    ax.set(xlabel="iteration", ylabel=column)
    ax.legend(handles=[plt.Line2D([], [], color=colours[m], label=m) for m in members], fontsize=7, title="member")
    return save(fig, out, title)


def save(fig, out: Path, title: str) -> Path:
    # Wrapped to the figure's width (about 14 characters an inch at this size), or a one-panel figure cuts it.
    fig.suptitle(textwrap.fill(title, width=max(30, int(fig.get_figwidth() * 14))), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def image_grid(cells: dict[tuple[str, str], np.ndarray], out: Path, title: str) -> Path:
    """A montage of samples per (row label, column label), e.g. (discriminator size, unroll steps)."""
    rows, columns, fig, axes = panel_grid(cells, 2.6, 2.7)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(column, fontsize=9)
            if j == 0:
                ax.set_ylabel(row, fontsize=9)
            if (row, column) not in cells:
                ax.set_frame_on(False)  # e.g. the data column below its first row: no empty frame
                continue
            picture = montage(cells[(row, column)])
            ax.imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture, cmap="gray", interpolation="nearest")
    return save(fig, out, title)


def images(samples: pd.DataFrame) -> np.ndarray:
    """Sample rows -> [n, *shape] float array."""
    shape = tuple(samples["shape"].iloc[0])
    return np.stack(samples["values"].to_numpy()).reshape(-1, *shape).astype(np.float64)


def colour_scatter(cells: dict[tuple[str, str], np.ndarray], data: np.ndarray, out: Path, title: str) -> Path:
    """Per (row, column) cell: recovered colours' R vs G, data in grey, model points drawn in their own colour."""
    rows, columns, fig, axes = panel_grid(cells, 3.0, 3.0)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            ax.scatter(data[:, 0], data[:, 1], s=4, c="0.75", label="data")
            if (row, column) in cells:
                model = cells[(row, column)]
                ax.scatter(
                    model[:, 0],
                    model[:, 1],
                    s=8,
                    c=np.clip((model + 1) / 2, 0, 1),
                    edgecolors="k",
                    linewidths=0.2,
                    label="model",
                )
            ax.set_xlim(-1.05, 1.05)
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"{row}, {column}", fontsize=9)
            ax.set_xlabel("R", fontsize=8)
            ax.set_ylabel("G", fontsize=8)
    return save(fig, out, title)


def distance_histograms(model: dict[int, list[np.ndarray]], data: np.ndarray, out: Path) -> Path:
    """The paper's Figure 8: one panel per unroll setting, data in red, one blue line per seed, medians dashed."""
    settings = sorted(model)
    fig, axes = plt.subplots(1, len(settings), figsize=(3.6 * len(settings), 3.0), squeeze=False, sharey=True)
    bins = np.linspace(0, max([data.max()] + [d.max() for ds in model.values() for d in ds]) * 1.02, 50)
    for ax, k in zip(axes[0], settings):
        ax.hist(data, bins=bins, histtype="step", color="red", density=True, label="data")
        ax.axvline(np.median(data), color="red", linestyle="--", linewidth=1)
        for seed, distances in enumerate(model[k]):
            label = "model, one line per seed" if seed == 0 else None
            ax.hist(distances, bins=bins, histtype="step", color="tab:blue", density=True, alpha=0.8, label=label)
            ax.axvline(np.median(distances), color="tab:blue", linestyle="--", linewidth=0.8)
        ax.set_title(f"{k} unroll steps")
        ax.set_xlabel("L2 distance between sample pairs")
    axes[0][0].set_ylabel("density (dashed: medians)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
