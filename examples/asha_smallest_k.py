"""Which is the cheapest number of unroll steps that covers every mode of the ring? ASHA decides.

    python examples/asha_smallest_k.py --storage ./results [--smoke-test]

Searches K in {0, 1, 2, 3, 5, 10} x 5 seeds on the paper's ring of 8 Gaussians with Tune's ASHA
scheduler, which stops trials that lag their peers on `modes` at each rung. Trials report after
every evaluation (every `report_every` iterations), which is ASHA's time axis. A stopped trial's
last Parquet row says `stopped`; `python -m analysis report <storage>/<name>` lists them apart.
"""

import pandas as pd
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from orchestrator.scripts import tune_script_parser
from trainables import experiments
from trainables.ray_adapter import trainable

parser = tune_script_parser(__doc__, "asha-smallest-k", "seconds: the smoke profile, 2 seeds, K in {0, 2}")
args = parser.parse_args()

if args.smoke_test:
    profile, seeds, unroll_steps, overrides = "smoke", [0, 1], [0, 2], {"report_every": 10, "snapshot_every": 40}
else:
    profile, seeds, unroll_steps, overrides = "quick", [0, 1, 2, 3, 4], [0, 1, 2, 3, 5, 10], {}
config = experiments.get("mog").config(profile, overrides)
reports = config.iterations // config.report_every + 1  # ASHA's time axis: reports, step 0's included
tuner = tune.Tuner(
    trainable("mog", profile, overrides=overrides),
    param_space={"seed": tune.grid_search(seeds), "unroll_steps": tune.grid_search(unroll_steps)},
    tune_config=tune.TuneConfig(
        scheduler=ASHAScheduler(metric="modes", mode="max", max_t=reports, grace_period=2, reduction_factor=2),
    ),
    run_config=tune.RunConfig(storage_path=args.storage, name=args.name, verbose=0),
)
results = tuner.fit()
final = pd.DataFrame([{**r.config, "modes": r.metrics.get("modes"), "step": r.metrics.get("step"),
                       "of": r.metrics.get("iterations")} for r in results])  # fmt: skip
final["ran to the end"] = final["step"] == final["of"]
print(final.sort_values(["unroll_steps", "seed"]).to_string(index=False))
covered = final[final["ran to the end"]].groupby("unroll_steps")["modes"].min()
full = covered[covered >= 8]
print(f"cheapest K with every surviving seed on all 8 modes: {full.index.min() if len(full) else 'none'}")
