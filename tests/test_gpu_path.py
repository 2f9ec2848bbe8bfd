"""The GPU path on a machine without a GPU: requests refused before anything is written, and a torch that
cannot use CUDA on a 'GPU' node found by the probe, not by every trial. A local Ray that claims a GPU
(``num_gpus=1``) stands in for a GPU node whose torch is a CPU build."""

import pytest
import torch

from orchestrator.spec import SweepError, SweepSpec
from orchestrator.sweep import probe_cuda, run_sweep

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="these tests need a machine whose torch sees no GPU")


@pytest.fixture(scope="module")
def ray_with_a_fake_gpu():
    import ray

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=300 * 2**20)  # fmt: skip
    yield ray
    ray.shutdown()


def test_a_gpu_request_with_no_local_gpu_is_refused_before_ray_starts(tmp_path, monkeypatch):
    import orchestrator.sweep as sweep

    monkeypatch.setattr(sweep, "_start_ray", lambda *a: pytest.fail("Ray was started"))
    spec = SweepSpec("mog", "smoke", storage=str(tmp_path), gpus_per_trial=1)
    with pytest.raises(SweepError, match="this machine has no GPU that torch .* can use"):
        run_sweep(spec, progress=False)
    assert list(tmp_path.iterdir()) == []


# Before the tests that start Ray: a local check happens only while no Ray runs in this process.
def test_cuda_graphs_without_gpu_trials_are_refused_before_anything_starts(tmp_path, monkeypatch):
    import orchestrator.sweep as sweep

    with pytest.raises(SweepError, match="cuda_graphs=true needs GPU trials: drop --gpus-per-trial 0"):
        SweepSpec("mog", "smoke", gpus_per_trial=0, overrides={"cuda_graphs": "true"}).resolved()
    monkeypatch.setattr(sweep, "_start_ray", lambda *a: pytest.fail("Ray was started"))
    spec = SweepSpec("mog", "smoke", storage=str(tmp_path), overrides={"cuda_graphs": "true"})
    with pytest.raises(
        SweepError, match="^--set cuda_graphs=true needs GPU trials: this machine has no GPU that torch"
    ):
        run_sweep(spec, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_cpu_only_torch_on_a_gpu_node_is_one_error_and_leaves_no_sweep(ray_with_a_fake_gpu, tmp_path):
    spec = SweepSpec("mog", "smoke", storage=str(tmp_path), gpus_per_trial=0.5, name="gpu")
    with pytest.raises(SweepError, match=r"torch .* \(CUDA build: None\) on node .* cannot use its GPU"):
        run_sweep(spec, progress=False)
    assert not (tmp_path / "gpu" / "sweep.json").exists()
    assert not (tmp_path / "gpu" / "parquet").exists()


def test_more_gpus_than_any_node_has_is_refused(ray_with_a_fake_gpu, tmp_path):
    spec = SweepSpec("mog", "smoke", storage=str(tmp_path), gpus_per_trial=2, name="two")
    with pytest.raises(SweepError, match="no node of the Ray cluster has that many"):
        run_sweep(spec, progress=False)
    assert not (tmp_path / "two" / "sweep.json").exists()


def test_the_probe_waits_only_so_long_for_a_free_gpu(ray_with_a_fake_gpu):
    ray = ray_with_a_fake_gpu

    @ray.remote(num_gpus=1)
    def hold(seconds):
        import time

        time.sleep(seconds)

    held = hold.remote(30)
    with pytest.raises(SweepError, match="no GPU became free for a check within 2 s"):
        probe_cuda(1, progress=False, timeout_s=2)
    ray.cancel(held, force=True)


@pytest.mark.parametrize(
    "gpus, message", [(-1, "finite number >= 0"), (float("nan"), "finite number >= 0"), (1.5, "whole number")]
)
def test_impossible_gpu_shares_are_refused_by_the_spec(gpus, message):
    with pytest.raises(SweepError, match=message):
        SweepSpec("mog", "smoke", gpus_per_trial=gpus).resolved()
