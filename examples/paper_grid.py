"""The paper's seed x unroll-steps grid, written directly against Ray Tune.

    python examples/paper_grid.py --storage ./results [--smoke-test]

What `python -m orchestrator sweep mog --profile paper` runs, as a plain Tune script: one
trial per (seed, K), results in Parquet under <storage>/<name>/, readable by
`python -m analysis report <storage>/<name>`.
"""

from ray import tune

from orchestrator.scripts import tune_script_parser
from trainables.ray_adapter import trainable

parser = tune_script_parser(__doc__, "paper-grid", "seconds: the smoke profile, 2 seeds, K in {0, 2}")
args = parser.parse_args()

profile, seeds, unroll_steps = (
    ("smoke", [0, 1], [0, 2]) if args.smoke_test else ("paper", [0, 1, 2, 3, 4], [0, 1, 5, 10])
)
tuner = tune.Tuner(
    trainable("mog", profile),
    param_space={"seed": tune.grid_search(seeds), "unroll_steps": tune.grid_search(unroll_steps)},
    run_config=tune.RunConfig(storage_path=args.storage, name=args.name, verbose=0),
)
results = tuner.fit()
for result in sorted(results, key=lambda r: (r.config["unroll_steps"], r.config["seed"])):
    print(f"K={result.config['unroll_steps']} seed={result.config['seed']}: modes {result.metrics['modes']:.0f}, "
          f"high quality {result.metrics['high_quality_pct']:.1f}%")  # fmt: skip
