import os

import pytest

os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")


@pytest.fixture(scope="module")
def ray_local():
    """A real two-CPU local Ray cluster, shared by the tests of one module (start-up costs ~6 s)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=300 * 2**20)
    yield ray
    ray.shutdown()
