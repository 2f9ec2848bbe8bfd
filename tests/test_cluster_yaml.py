"""cluster.yaml against the schema in Ray's wheel and the checks `ray up` runs (Ray 2.60 private API, pinned)."""

import copy
import json
import os
import platform
import re
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "cluster.yaml").read_text())
SCHEMA = json.loads((Path(os.path.dirname(ray.autoscaler.__file__)) / "ray-schema.json").read_text())


def check(config):
    jsonschema.validate(config, SCHEMA)
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_passes_schema_and_ray_up_validation():
    check(CONFIG)
    workers = CONFIG["available_node_types"]["gpu_worker"]
    # One GPU worker stays up, so a sweep's GPU check finds a GPU (sweep._gpus_per_trial refuses a cluster without).
    assert workers["resources"]["GPU"] >= 1 and workers["min_workers"] >= 1
    assert CONFIG["available_node_types"][CONFIG["head_node_type"]]["resources"]["GPU"] == 0


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda c: c.update(typo_field=1), "Additional properties"),
        (lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=0.5), "is not of type 'integer'"),
        (lambda c: c["available_node_types"]["gpu_worker"].pop("node_config"), "'node_config' is a required property"),
        (lambda c: c.update(head_node_type="nope"), "head_node_type"),
    ],
)
def test_the_validation_would_catch_mistakes(break_it, message):
    broken = copy.deepcopy(CONFIG)
    break_it(broken)
    with pytest.raises(Exception, match=message):
        check(broken)


def _pin(text: str, name: str) -> str:
    return re.search(rf"{re.escape(name)}==([0-9.]+)", text).group(1)


def test_every_node_runs_a_pinned_image_that_can_install_and_run_this_torch():
    pyproject = (ROOT / "pyproject.toml").read_text()
    ray_version = _pin(pyproject, "ray[tune,train]")
    python = "py" + "".join(platform.python_version_tuple()[:2])  # the development machines' Python
    docker = CONFIG["docker"]
    assert docker["image"] == f"rayproject/ray:{ray_version}-{python}-cu128"  # GPU workers: CUDA user space
    assert docker["head_image"] == f"rayproject/ray:{ray_version}-{python}-cpu"
    for name, node in CONFIG["available_node_types"].items():
        # No ImageId would mean Ray's fallback, an Ubuntu 18.04 AMI whose glibc the torch wheel cannot use.
        image = node["node_config"].get("ImageId", "")
        assert image.startswith("resolve:ssm:/aws/service/deeplearning/ami/x86_64/") and "ubuntu-22.04" in image, name
    torch_pin = re.search(r"^TORCH\s*\?=\s*torch==([0-9.]+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    install = " ".join(CONFIG["setup_commands"])
    assert _pin(install, "torch") == torch_pin and _pin(install, "ray[default]") == ray_version
    assert "-e /home/ray/unrolled-gan" in install and CONFIG["file_mounts"]["/home/ray/unrolled-gan"] == "."
    check = " ".join(CONFIG["worker_setup_commands"])
    assert "assert torch.cuda.is_available()" in check


def test_installs_this_project_and_keeps_the_token_out_of_the_repository():
    assert CONFIG["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"  # from the user's machine
    for command in CONFIG["head_start_ray_commands"][1:] + CONFIG["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in command
    tracked = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}
    assert "auth_token" not in tracked


def test_the_workers_cuda_check_passes_only_where_torch_sees_a_gpu():
    import subprocess
    import sys

    import torch

    command = CONFIG["worker_setup_commands"][0]
    code = command.split('python -c "', 1)[1].rsplit('"', 1)[0]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if torch.cuda.is_available():
        assert done.returncode == 0 and "CUDA ok:" in done.stdout
    else:  # e.g. a CPU-only torch: `ray up` must fail on such a node
        assert done.returncode != 0 and "sees no GPU on this node" in done.stderr
