"""A sweep's Parquet in pandas and a figure of your own, as in a notebook.

    python examples/analyse_sweep.py ./results/paper-grid --out modes.png

Reads the metrics table (one row per trial and reported step) with pyarrow, averages over seeds
and draws high-quality share against training iteration, one line per unroll setting.
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import seaborn as sns  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("sweep", help="a sweep's folder (CLI sweep or Tune script), holding parquet/metrics")
parser.add_argument("--out", default="modes.png")
args = parser.parse_args()

metrics = ds.dataset(f"{args.sweep}/parquet/metrics", format="parquet", partitioning="hive").to_table().to_pandas()
print(metrics.groupby(["unroll_steps", "step"])[["modes", "high_quality_pct"]].mean().round(2).to_string())
ax = sns.lineplot(data=metrics, x="step", y="high_quality_pct", hue="unroll_steps", errorbar="se", palette="viridis")
ax.set(xlabel="iteration (1 D + 1 G update)", ylabel="% samples within 3 std of a mode", title=args.sweep)
plt.savefig(args.out, dpi=120, bbox_inches="tight")
print(f"figure: {args.out}")
