"""Which learning rates make K = 0 collapse and K = 10 not? A search with Optuna through Ray Tune.

    pip install -e '.[optuna]'
    python examples/optuna_search.py --storage ./results [--smoke-test]

Optuna's sampler proposes (lr_G, lr_D, K); each trial trains the ring of 8 Gaussians and reports
its high-quality share, which Optuna maximises. Every trial's rows land in Parquet like a sweep's.
"""

from ray import tune
from ray.tune.search.optuna import OptunaSearch

from orchestrator.scripts import tune_script_parser
from trainables.ray_adapter import trainable

parser = tune_script_parser(__doc__, "optuna-lr-k", "seconds: the smoke profile, 3 samples")
parser.add_argument("--samples", type=int, default=20)
args = parser.parse_args()

tuner = tune.Tuner(
    trainable("mog", "smoke" if args.smoke_test else "quick"),
    param_space={
        "g_lr": tune.loguniform(1e-5, 1e-2),
        "d_lr": tune.loguniform(1e-5, 1e-2),
        "unroll_steps": tune.choice([0, 10]),
    },
    tune_config=tune.TuneConfig(
        search_alg=OptunaSearch(metric="high_quality_pct", mode="max", seed=0),
        num_samples=3 if args.smoke_test else args.samples,
        max_concurrent_trials=2,
    ),
    run_config=tune.RunConfig(storage_path=args.storage, name=args.name, verbose=0),
)
results = tuner.fit()
best = results.get_best_result(metric="high_quality_pct", mode="max")
print(f"best: K={best.config['unroll_steps']}, lr_G={best.config['g_lr']:.2e}, lr_D={best.config['d_lr']:.2e}: "
      f"{best.metrics['high_quality_pct']:.1f}% high quality, {best.metrics['modes']:.0f} modes")  # fmt: skip
