"""A real two-node Ray cluster on this machine (`ray start` twice, its own auth token): sweeps
through --address and as a Ray job, the driver killed and the same command resumed, a worker
node killed mid-sweep, S3 storage on a local S3-protocol server, and the failures a user should
get at once (GPU request, missing token).

Clients talk to 127.0.0.1 only. Ray 2.60 itself replaces a node address of 127.0.0.1 with the
host's routable one (`services.resolve_ip_for_localhost`) and its GCS and raylets listen on every
interface; only the dashboard honours --dashboard-host. The cluster's own token is what keeps
other clients out, which a test below checks.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import SMOKE_SWEEP

from analysis.results import load_metrics

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, env, timeout=600, **kw):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, **kw)


def start_node(args, env, root, name):
    """`ray start` in a session of its own: every daemon of the node stays in its process group
    (Ray renames its agents to ``ray::…``, so they cannot be found by command line)."""
    done = subprocess.run(
        [
            BIN / "ray",
            "start",
            *args,
            f"--temp-dir={root}/{name}",
            f"--dashboard-agent-listen-port={free_port()}",
        ],  # two nodes, one host: not both 52365
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return _process_group_of(root / name)


def _process_group_of(node_root: Path) -> int:
    """The process group of the node's raylet, i.e. of the `ray start` that made it."""
    for _ in range(300):
        for line in subprocess.run(
            ["ps", "-ww", "-eo", "pgid=,args="], capture_output=True, text=True
        ).stdout.splitlines():
            pgid, _, args = line.strip().partition(" ")
            if "/raylet/raylet " in args and f"{node_root}/session_" in args:
                return int(pgid)
        time.sleep(0.1)
    raise AssertionError(f"no raylet for {node_root}")


def kill_node(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the node is already gone
        os.killpg(group, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster():
    # A short path: Ray's unix sockets live under the temp dir and may not exceed 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="ugc-", dir="/tmp"))
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    # Its own token, never the home directory's; authentication stays on. The venv's python
    # first on PATH, as on a cluster node where the project is installed.
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("RAY_ADDRESS", None)
    port, dashboard = free_port(), free_port()
    groups = {}
    groups["head"] = start_node(
        [
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--disable-usage-stats",
        ],
        env,
        root,
        "h",
    )
    cluster = {
        "address": f"127.0.0.1:{port}",
        "dashboard": f"http://127.0.0.1:{dashboard}",
        "env": env,
        "root": root,
        "groups": groups,
    }
    start_worker(cluster)
    yield cluster
    # End this cluster's processes only (never `ray stop`, which would end every cluster of the user).
    for group in groups.values():
        kill_node(group)
    shutil.rmtree(root, ignore_errors=True)


def start_worker(cluster, name="w") -> None:
    # Its own, empty data/classifier cache, as a node of a real cluster has: trials there must read
    # what the driver published in the sweep's storage, never fetch or train anything themselves.
    env = {**cluster["env"], "UNROLLED_GAN_CACHE": str(cluster["root"] / "worker-cache")}
    cluster["groups"]["worker"] = start_node(
        [f"--address={cluster['address']}", "--node-ip-address=127.0.0.1", "--num-cpus=1"], env, cluster["root"], name
    )


def sweep(cluster, storage, *extra, name="two-node", background=False):
    args = [sys.executable, "-m", "orchestrator", *SMOKE_SWEEP, "--storage", str(storage), "--address",
            cluster["address"], "--name", name, "--no-report", *extra]  # fmt: skip
    if background:
        return subprocess.Popen(args, env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return run(args, cluster["env"])


def node_ids(cluster) -> dict[str, str]:
    """'head' / 'worker' -> Ray node id, told apart by their temp dirs."""
    script = (
        f"import json, ray; ray.init(address='{cluster['address']}', log_to_driver=False); "
        "print(json.dumps([[n['NodeID'], n['RayletSocketName']] for n in ray.nodes() if n['Alive']]))"
    )
    out = run([sys.executable, "-c", script], cluster["env"])
    nodes = json.loads(out.stdout.strip().splitlines()[-1])
    return {("head" if f"{cluster['root']}/h/" in socket_name else "worker"): node for node, socket_name in nodes}


def assert_every_row_once(path, trials, steps):
    metrics = load_metrics(str(path))
    assert not metrics.duplicated(["trial_id", "step"]).any()
    assert metrics.groupby("trial_id")["step"].apply(list).tolist() == [steps] * trials
    return metrics


def test_sweep_runs_on_both_nodes(cluster, tmp_path):
    done = sweep(cluster, tmp_path, "--set", "iterations=400", "report_every=100", "snapshot_every=200")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    metrics = assert_every_row_once(tmp_path / "two-node", 4, [0, 100, 200, 300, 400])
    assert set(metrics["node_id"]) == set(node_ids(cluster).values())


def test_every_node_labels_with_the_drivers_classifier(cluster, tmp_path, same_as_without_ray):
    done = run([sys.executable, "-m", "orchestrator", "sweep", "stacked_mnist", "--profile", "smoke", "--seeds", "0",
                "--unroll-steps", "0", "1", "--storage", str(tmp_path), "--address", cluster["address"],
                "--no-report"], cluster["env"])  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    metrics = load_metrics(str(tmp_path / "stacked_mnist-smoke"))
    nodes = node_ids(cluster)
    assert set(metrics["node_id"]) == {nodes["head"], nodes["worker"]}  # one trial on each node
    manifest = json.loads((tmp_path / "stacked_mnist-smoke" / "artifacts" / "manifest.json").read_text())
    published = {name: entry["sha256"] for name, entry in manifest.items()}
    assert [json.loads(a) for a in metrics["artifacts_json"].unique()] == [published]
    worker_cache = cluster["root"] / "worker-cache"
    assert not list(worker_cache.rglob("mnist_classifier-*")) and not list(worker_cache.rglob("*.npy"))
    print(f"artifacts: classifier {published['classifier'][:12]} (test accuracy "
          f"{manifest['classifier']['test_accuracy']:.4f}) on {len(metrics)} rows from both nodes; worker cache "
          f"{sorted(p.name for p in worker_cache.rglob('*'))}")  # fmt: skip
    same_as_without_ray(metrics, "stacked_mnist")  # the numbers of the same trials run on one machine


@pytest.mark.parametrize("token", ["another token", "no token at all"])
def test_client_without_the_cluster_token_is_refused(cluster, tmp_path, token):
    wrong = tmp_path / "token"
    if token == "another token":
        wrong.write_text(secrets.token_hex(32))
    # An empty home: no ~/.ray/auth_token to fall back on either.
    (tmp_path / "home").mkdir()
    env = {**cluster["env"], "RAY_AUTH_TOKEN_PATH": str(wrong), "HOME": str(tmp_path / "home")}
    command = ["sweep", "mog", "--profile", "smoke", "--storage", str(tmp_path), "--address", cluster["address"]]
    done = run([sys.executable, "-m", "orchestrator", *command], env, timeout=300)
    assert done.returncode != 0
    assert "could not connect to Ray at 127.0.0.1" in done.stderr and "refused this client's token" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "mog-smoke").exists()


def test_gpu_request_on_a_cluster_without_gpus_fails_at_once(cluster, tmp_path):
    start = time.monotonic()
    done = sweep(cluster, tmp_path, "--gpus-per-trial", "0.5", name="gpu")
    assert done.returncode == 2 and "the Ray cluster has no GPU" in done.stderr
    assert time.monotonic() - start < 120  # Tune alone would wait for ever


def ray_job(cluster, command, *args):
    return run([BIN / "ray", "job", command, "--address", cluster["dashboard"], *args], cluster["env"], timeout=300)


def test_sweep_submitted_as_a_ray_job(cluster, tmp_path):
    # The README's workflow: the code goes up as the job's working directory, the sweep's driver
    # runs on the head and finds the cluster with --address auto.
    submitted = ray_job(cluster, "submit", "--no-wait", "--working-dir", str(REPO), "--", "python", "-m",
                        "orchestrator", *SMOKE_SWEEP, "--storage", str(tmp_path), "--name", "job", "--address",
                        "auto")  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    job_id = re.search(r"raysubmit_\w+", submitted.stdout + submitted.stderr).group(0)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = ray_job(cluster, "status", job_id)
        ended = re.search(rf"Job '{job_id}' (succeeded|failed|was stopped)", status.stdout + status.stderr)
        if ended:
            break
        time.sleep(2)
    logs = ray_job(cluster, "logs", job_id).stdout
    assert ended and ended.group(1) == "succeeded", logs[-3000:]
    assert "ran job: 4/4 trials ran to their end" in logs and f"report: {tmp_path}/job/report" in logs
    assert_every_row_once(tmp_path / "job", 4, [0, 20, 40])
    assert (tmp_path / "job" / "report" / "figure1_samples.png").read_bytes()[:4] == b"\x89PNG"


def test_driver_lost_mid_sweep_then_the_same_command_resumes(cluster, tmp_path, same_as_without_ray):
    overrides = ["--set", "iterations=3000", "report_every=250", "snapshot_every=1500"]
    driver = sweep(cluster, tmp_path, *overrides, name="driver-loss", background=True)
    partition = tmp_path / "driver-loss" / "parquet" / "metrics" / "experiment=mog"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(partition.glob("*-000001000.parquet")):
        time.sleep(0.1)
    driver.kill()  # the driver alone: the cluster stays up and ends the dead driver's trials
    driver.wait()
    rows_before = len(list(partition.glob("*.parquet")))
    assert 0 < rows_before < 4 * 13, "the sweep was not caught mid-run"

    again = sweep(cluster, tmp_path, *overrides, name="driver-loss")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resumed driver-loss: 4/4 trials ran to their end" in again.stdout
    metrics = assert_every_row_once(tmp_path / "driver-loss", 4, list(range(0, 3001, 250)))
    print(f"driver loss: killed after {rows_before} of {4 * 13} rows; found {len(metrics)} rows, expected {4 * 13}")
    same_as_without_ray(metrics)


def test_worker_node_lost_mid_sweep(cluster, tmp_path):
    steps = list(range(0, 6001, 200))
    driver = sweep(
        cluster,
        tmp_path,
        "--set",
        "iterations=6000",
        "report_every=200",
        "snapshot_every=3000",
        "--max-failures",
        "3",
        name="worker-loss",
        background=True,
    )
    worker = node_ids(cluster)["worker"]
    partition = tmp_path / "worker-loss" / "parquet" / "metrics" / "experiment=mog"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        files = list(partition.glob("*.parquet")) if partition.exists() else []
        if len(files) >= 12:
            metrics = load_metrics(str(tmp_path / "worker-loss"))
            if (metrics["node_id"] == worker).any() and metrics["step"].max() < 6000:
                break
        time.sleep(0.5)
    else:
        pytest.fail("no row from the worker node in time")
    rows_before = len(list(partition.glob("*.parquet")))
    kill_node(cluster["groups"]["worker"])  # every process of the node, agents included
    try:
        output, _ = driver.communicate(timeout=900)
    finally:
        # A new worker node, so the tests after this one run on two nodes whatever their order.
        start_worker(cluster, name=f"w{time.monotonic_ns()}")
    assert driver.returncode == 0, output[-3000:]
    assert "4/4 trials ran to their end" in output
    metrics = assert_every_row_once(tmp_path / "worker-loss", 4, steps)
    temporaries = list(partition.glob(".tmp-*"))  # a write cut off by the kill; hidden from readers by its name
    print(
        f"worker loss: killed after {rows_before} of {4 * len(steps)} rows; found {len(metrics)} rows, "
        f"expected {4 * len(steps)}; {len(temporaries)} leftover temporary file(s)"
    )
    visible = [p for p in partition.glob("*.parquet") if not p.name.startswith(".")]
    assert len(visible) == 4 * len(steps)  # no extra or half-written visible file
    finished_on = metrics[metrics["step"] == 6000]["node_id"]
    assert (finished_on != worker).all()  # the trials that were on the lost node finished elsewhere


def test_s3_storage_on_a_local_server(cluster, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        env = {
            **cluster["env"],
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for _ in range(50):
            made = run([sys.executable, "-c", "import boto3; boto3.client('s3').create_bucket(Bucket='sweeps')"], env)
            if made.returncode == 0:
                break
            time.sleep(0.2)
        assert made.returncode == 0, made.stderr[-1000:]
        command = ["sweep", "mog", "--profile", "smoke", "--storage", "s3://sweeps/unrolled", "--address",
                   cluster["address"]]  # fmt: skip
        done = run([sys.executable, "-m", "orchestrator", *command], env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        report = run(
            [
                sys.executable,
                "-m",
                "analysis",
                "report",
                "s3://sweeps/unrolled/mog-smoke",
                "--out",
                str(tmp_path / "report"),
            ],
            env,
        )
        assert report.returncode == 0, report.stderr[-2000:]
        assert (tmp_path / "report" / "figure1_samples.png").exists()
        listing = run(
            [
                sys.executable,
                "-c",
                "import boto3; print('\\n'.join(o['Key'] for o in boto3.client('s3')"
                ".list_objects_v2(Bucket='sweeps')['Contents']))",
            ],
            env,
        ).stdout.splitlines()
        assert any(key.endswith("tuner.pkl") for key in listing)
        assert sorted(k.rsplit("/", 1)[1] for k in listing if "/trial_state/" in k and k.endswith(".pt")) == [
            "seed=0,unroll_steps=0.pt",
            "seed=0,unroll_steps=2.pt",
        ]  # the smoke grid's final states
        rows = [k for k in listing if "/parquet/metrics/experiment=mog/" in k and k.endswith(".parquet")]
        assert len(rows) == 2 * 3 and not any("/.tmp-" in k for k in rows)  # S3 also keeps folder markers
    finally:
        os.killpg(server.pid, signal.SIGTERM)
