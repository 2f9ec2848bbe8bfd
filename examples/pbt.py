"""Population Based Training on the ring of 8 Gaussians: the learning rates and K evolve while the members train.

    python examples/pbt.py --storage ./results [--smoke-test]

Each member trains one seed with a report (and a Tune checkpoint) every `report_every` iterations. Every
`perturbation_interval` iterations synchronous PBT (Jaderberg et al. 2017) replaces the worst quarter's state with the
best quarter's and perturbs the copied g_lr, d_lr and K (`unroll_steps`, among the paper's values). A member's rows
after an exploit are its next generation (`generation`, `parent`, `parent_step` columns); the superseded generation's
last row says `exploited`. `python -m analysis report <storage>/<name>` reads the result; this script prints each
member's lineage from the Parquet rows.
"""

import json

from ray import tune

from analysis.results import load_metrics
from orchestrator.scripts import tune_script_parser
from trainables.ray_adapter import population_based_training, trainable

parser = tune_script_parser(__doc__, "pbt-ring", "seconds: the smoke profile, 4 members")
args = parser.parse_args()

if args.smoke_test:
    profile, members, overrides, interval = "smoke", 4, {"report_every": 10, "snapshot_every": 40}, 20
else:
    profile, members, overrides, interval = "quick", 8, {}, 1_000
learning_rates = [1e-4, 3e-4, 1e-3, 3e-3]
scheduler = population_based_training(
    time_attr="step",  # our iterations, not Tune's report count: the interval means the same at any report_every
    metric="modes",
    mode="max",
    perturbation_interval=interval,
    hyperparam_mutations={"g_lr": learning_rates, "d_lr": learning_rates, "unroll_steps": [0, 1, 5, 10]},
    quantile_fraction=0.25,
    synch=True,
)
tuner = tune.Tuner(
    trainable("mog", profile, overrides=overrides, tune_checkpoints=True),
    param_space={
        "seed": tune.grid_search(list(range(members))),
        "g_lr": tune.choice(learning_rates),
        "d_lr": tune.choice(learning_rates),
        "unroll_steps": tune.choice([0, 5]),
    },
    tune_config=tune.TuneConfig(scheduler=scheduler),
    run_config=tune.RunConfig(
        storage_path=args.storage, name=args.name, verbose=0,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4),
    ),
)  # fmt: skip
results = tuner.fit()
if results.num_errors:
    raise SystemExit(f"{results.num_errors} member(s) failed: {results.errors[0]}")

metrics = load_metrics(f"{args.storage}/{args.name}")
print("member generations (from the Parquet rows):")
for trial_id, rows in metrics.groupby("trial_id", sort=True):
    first, last = rows.iloc[0], rows.iloc[-1]
    config = json.loads(last["config_json"])
    origin = f"from {first['parent']} at step {first['parent_step']}" if first["generation"] else "from scratch"
    values = f"g_lr={config['g_lr']:g} d_lr={config['d_lr']:g} K={config['unroll_steps']}"
    print(f"  {trial_id}: {origin}, steps {first['step']}-{last['step']} ({last['status']}), {values}, "
          f"modes {last['modes']:g}")  # fmt: skip
exploits = int((metrics.groupby("trial_id")["generation"].first() > 0).sum())
print(f"{exploits} exploit(s); best final modes: {metrics[metrics['status'] == 'finished']['modes'].max():g}")
