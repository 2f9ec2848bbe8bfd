import os
import tempfile

import pytest

os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")

# The suite proves the set-up from nothing: MNIST and the labelling classifier are fetched and
# trained into a cache of its own, never read from what an earlier run left in ~/.cache. Set here,
# at import, so that Ray workers and subprocesses started by the tests inherit it. `make test`
# passes a fresh folder explicitly; running pytest by hand gets one too.
if not os.environ.get("UNROLLED_GAN_CACHE"):
    os.environ["UNROLLED_GAN_CACHE"] = tempfile.mkdtemp(prefix="unrolled-gan-test-cache-")


@pytest.fixture(scope="module")
def ray_local():
    """A real two-CPU local Ray cluster, shared by the tests of one module (start-up costs ~6 s)."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=300 * 2**20,
    )
    yield ray
    ray.shutdown()


def assert_rows_match_runs_without_ray(metrics, experiment_name="mog"):
    """Every trial's rows equal, step by step, the same config trained without Ray (deterministic by seed)."""
    import json
    import math

    from trainables import experiments
    from trainables.trial import Trial

    experiment = experiments.get(experiment_name)
    for trial_id, rows in metrics.groupby("trial_id"):
        config = experiment.config_type(**json.loads(rows["config_json"].iloc[0]))
        reference = list(Trial(experiment, config).reports())
        rows = rows.sort_values("step")
        assert rows["step"].tolist() == [r.step for r in reference], trial_id
        for row, expected in zip(rows.itertuples(), reference):
            for name in experiment.metrics:
                a, b = getattr(row, name), expected.metrics[name]
                assert a == b or (math.isnan(a) and math.isnan(b)), (trial_id, row.step, name)


@pytest.fixture
def same_as_without_ray():
    return assert_rows_match_runs_without_ray


SMOKE_SWEEP = ["sweep", "mog", "--profile", "smoke", "--seeds", "0", "1", "--unroll-steps", "0", "2"]
"""`python -m orchestrator` arguments of the 4-trial sweep the end-to-end tests run."""


def assert_report_stands_alone(report) -> None:
    """A report names its sources itself: nothing in it points at a file outside the user's checkout."""
    texts = [report.text] + [f.read_text() for f in report.out_dir.iterdir() if f.suffix in (".md", ".csv")]
    assert not any("shared/" in text or "paper.md" in text for text in texts)


TORCH_FREE = {
    "trainables",
    "trainables.errors",
    "trainables.grid_point",
    "trainables.layout",
    "trainables.lineage",
    "trainables.results",
    "trainables.storage",
}


def build_report_without_torch(path, out) -> str:
    """Build a sweep's report in a fresh interpreter where torch and Ray cannot be imported.

    analysis/ reads Parquet only, so a report can be rebuilt on a laptop with pandas alone.
    """
    import subprocess
    import sys

    # Of trainables only its torch-free modules may load: the CLI parser, the sweep layout, the Parquet schema.
    code = (
        # Imports of torch and Ray fail as on a machine without them; neither name enters sys.modules (a None
        # entry there would look like an imported module to libraries that probe for torch, as scipy does).
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'ray'): raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Absent())\n"
        "from analysis.report import build_report\n"
        f"text = build_report({str(path)!r}, {str(out)!r}).text\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('trainables', 'orchestrator'))\n"
        f"assert set(loaded) <= {TORCH_FREE!r}, loaded\n"
        "print(text)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def capturable_adam_on_cpu(monkeypatch):
    """Lets ``torch.optim.Adam(capturable=True)`` run on the CPU, which torch refuses only because a CPU has no
    graphs to capture: its formula (step count a tensor) is then testable here, against the same ops on a GPU."""
    import importlib

    module = importlib.import_module("torch.optim.adam")  # the attribute torch.optim.adam is a function
    supported = module._get_capturable_supported_devices
    monkeypatch.setattr(module, "_get_capturable_supported_devices", lambda *a, **k: [*supported(), "cpu"])
