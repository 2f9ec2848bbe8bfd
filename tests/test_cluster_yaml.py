"""cluster.yaml against the schema in Ray's wheel and the checks `ray up` runs (Ray 2.60 private API, pinned)."""

import copy
import json
import os
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
    assert workers["resources"]["GPU"] >= 1 and workers["min_workers"] == 0
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


def test_installs_this_project_and_keeps_the_token_out_of_the_repository():
    assert any("-e /home/ubuntu/unrolled-gan" in c and "ray[default]==2.60.0" in c for c in CONFIG["setup_commands"])
    assert CONFIG["file_mounts"]["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"  # from the user's machine
    for command in CONFIG["head_start_ray_commands"][1:] + CONFIG["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in command
    tracked = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}
    assert "auth_token" not in tracked
