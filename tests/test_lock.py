"""One driver per sweep: the lock in the sweep's storage, on a local folder and on S3 (a local moto server)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import lock as lock_module
from orchestrator.lock import SweepLock
from orchestrator.spec import SweepError

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    port = free_port()
    server = subprocess.Popen([BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    for _ in range(100):
        try:
            boto3.client("s3").create_bucket(Bucket="sweeps")
            break
        except Exception:  # noqa: BLE001 - the server is still starting
            time.sleep(0.1)
    yield env
    os.killpg(server.pid, signal.SIGTERM)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k)
        else:
            os.environ[k] = v


@pytest.fixture(params=["local", "s3"])
def sweep_path(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "my-sweep")
    request.getfixturevalue("s3_server")
    return f"s3://sweeps/{tmp_path.name}/my-sweep"


def read_record(path):
    found = SweepLock(path, "x").store.read()
    return None if found is None else json.loads(found[0])


def test_a_second_driver_is_refused_and_the_first_release_frees_the_sweep(sweep_path):
    with SweepLock(sweep_path, "my-sweep"):
        with pytest.raises(SweepError) as refused:
            SweepLock(sweep_path, "my-sweep").acquire()
        line = str(refused.value)
        assert line.startswith("sweep my-sweep is already running, started at ") and "\n" not in line
        assert f"on host {socket.gethostname()} (pid {os.getpid()})" in line
    assert read_record(sweep_path) is None  # released
    with SweepLock(sweep_path, "my-sweep"):
        assert read_record(sweep_path)["pid"] == os.getpid()


def test_the_heartbeat_renews_the_lease(sweep_path, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.2)
    with SweepLock(sweep_path, "my-sweep"):
        first = read_record(sweep_path)["heartbeat_at"]
        time.sleep(1.0)
        assert read_record(sweep_path)["heartbeat_at"] > first


def test_a_driver_killed_with_sigkill_leaves_a_lock_the_next_driver_takes_over(sweep_path):
    code = (f"from orchestrator.lock import SweepLock; SweepLock({sweep_path!r}, 'my-sweep').acquire(); "
            "print('held', flush=True); import time; time.sleep(600)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SweepError, match="already running"):
        SweepLock(sweep_path, "my-sweep").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert read_record(sweep_path)["pid"] == holder.pid  # SIGKILL: nothing could clean up
    with SweepLock(sweep_path, "my-sweep"):  # same host, process gone: stale at once
        assert read_record(sweep_path)["pid"] == os.getpid()


def test_a_lock_from_another_host_is_stale_only_after_its_lease(sweep_path):
    other = SweepLock(sweep_path, "my-sweep")
    other.acquire()
    other._stop.set()  # that driver stops renewing, as if its host died
    other._thread.join()
    record = {**read_record(sweep_path), "host": "elsewhere", "pid": 1}
    other.store.renew(other.held.version, json.dumps(record))
    with pytest.raises(SweepError, match="when its lock counts as stale"):
        SweepLock(sweep_path, "my-sweep", lease_s=1.0).acquire()
    time.sleep(1.2)
    taker = SweepLock(sweep_path, "my-sweep", lease_s=1.0)
    taker.acquire()
    assert read_record(sweep_path)["owner"] == taker._owner
    taker.release()


def test_two_drivers_racing_for_a_stale_lock_cannot_both_win(sweep_path):
    stale = SweepLock(sweep_path, "my-sweep")
    stale.acquire()
    stale._stop.set()
    stale._thread.join()
    found = stale.store.read()
    # Both judged the same stale version; the conditional replace lets one through.
    first = SweepLock(sweep_path, "x").store.replace(found[1], json.dumps({"owner": "a"}))
    second = SweepLock(sweep_path, "x").store.replace(found[1], json.dumps({"owner": "b"}))
    assert first is not None and second is None
    assert read_record(sweep_path) == {"owner": "a"}


def test_the_sweep_command_refuses_a_second_driver_in_one_line(sweep_path, tmp_path):
    storage, name = sweep_path.rsplit("/", 1)
    with SweepLock(sweep_path, name):
        done = subprocess.run([sys.executable, "-m", "orchestrator", "sweep", "mog", "--profile", "smoke",
                               "--storage", storage, "--name", name],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"python -m orchestrator: error: sweep {name} is already running")
    assert len(done.stderr.strip().splitlines()) == 1 and "ray" not in done.stdout.lower()
