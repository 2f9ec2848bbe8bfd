"""Bad input on the command line: one clear line, a non-zero exit, no Ray started, no results touched."""

import functools
import shlex
import subprocess
import sys

import pytest

from analysis.__main__ import main as analysis_main
from orchestrator.cli import main as orchestrator_main


@pytest.fixture
def existing_results(tmp_path):
    sweep = tmp_path / "mog-quick"
    sweep.mkdir()
    (sweep / "keep.parquet").write_bytes(b"earlier results")
    return tmp_path


def run(argv, capsys):
    try:
        code = orchestrator_main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    "command, expected",
    [
        ("sweep gan9000", "unknown experiment 'gan9000'"),
        ("sweep mog --unroll-steps 0 -3", "--unroll-steps values must be a non-negative integer, got -3"),
        ("sweep mog --unroll-steps 1000000000", "unroll_steps must be at most 100, got 1,000,000,000"),
        ("sweep mog --set d_lr=inf", "d_lr must be a finite number, got inf"),
        ("sweep mog --set g_lr=nan", "g_lr must be a finite number, got nan"),
        ("sweep mog --gpus-per-trial -1", "--gpus-per-trial must be a finite number >= 0"),
        ("sweep mog --unroll-steps 2.5", "'2.5' is not an integer"),
        ("sweep mog --seeds", "--seeds: expected at least one argument"),
        ("sweep mog --seeds 1 1", "--seeds has repeated values"),
        ("sweep mog --profile huge", "unknown profile 'huge'"),
        ("sweep mog --set iterations=-5", "iterations must be a positive integer"),
        ("sweep mog --set seed=3", "sweep axes"),
        ("sweep mog --address 127.0.0.1:9", "no Ray cluster reachable"),
        ("sweep mog --address nonsense", "not of the form host:port"),
        ("sweep stacked_mnist --axis d_size=0.25,0.3", "d_size must be one of 0.25, 0.5, 1.0, got 0.3"),
        ("sweep stacked_mnist --mnist-dir /nonexistent/mnist", "MNIST folder not found: /nonexistent/mnist"),
        ("sweep mog --mnist-dir /tmp", "--mnist-dir: mog has no such setting"),
        ("sweep image --profile paper", "dataset cifar10 needs --cifar-dir"),
        ("sweep image --dataset cifar10 --cifar-dir /nonexistent", "CIFAR-10 folder not found"),
        ("sweep image --dataset svhn", "dataset must be one of cifar10, mnist"),
        ("sweep mog --variant second_order=true --variant generator_steps=5", "the same fields"),
        ("sweep mog --variant seed=1 --variant seed=2", "variant field(s) seed"),
        ("sweep mog --variant colour=red", "mog has no config field 'colour'"),
        ("sweep mog --variant second_order=true --variant second_order=yes", "repeated entries"),
        # A variant that is not a valid config in the grid fails before anything starts.
        ("sweep mog --variant second_order=true,average_over_unroll=true", "set second_order=false"),
        ("sweep mog --unroll-steps 5 --variant d_ensemble_size=3", "use unroll_steps 0"),
        ("sweep mog --seeds-per-trial 0", "--seeds-per-trial must be a positive integer, got 0"),
        ("sweep mog --max-concurrent 0", "--max-concurrent must be a positive integer, got 0"),
        # Once accepted, and trained (seed -1) or silently replaced (the default name) or ignored (CIFAR-10 dir).
        ("sweep mog --seeds 0 -1", "--seeds values must be a non-negative integer, got -1"),
        ("sweep mog --name ''", "sweep name '' is not allowed"),
        ("sweep image --profile smoke --cifar-dir /tmp", "cifar_dir is only read with dataset cifar10"),
    ],
)
def test_bad_sweep_arguments(command, expected, capsys, existing_results, monkeypatch):
    monkeypatch.chdir(existing_results)
    import ray

    code, err = run(shlex.split(command) + ["--storage", str(existing_results)], capsys)
    assert code == 2
    assert expected in err and len(err.splitlines()) == 1, err
    assert not ray.is_initialized()
    assert (existing_results / "mog-quick" / "keep.parquet").read_bytes() == b"earlier results"
    assert sorted(p.name for p in existing_results.iterdir()) == ["mog-quick"]


def test_unwritable_storage(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, err = run(["sweep", "mog", "--storage", str(blocker / "sub")], capsys)
    assert code != 0 and "is not writable" in err and len(err.splitlines()) == 1


def test_analysis_report_on_a_missing_or_corrupt_sweep(capsys, tmp_path):
    assert analysis_main(["report", str(tmp_path / "absent")]) == 2
    assert "no sweep results at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert analysis_main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no sweep results at" in err and len(err.splitlines()) == 1
    assert list((tmp_path / "empty").iterdir()) == []  # no report folder left behind
    partition = tmp_path / "parquet" / "metrics" / "experiment=mog"
    partition.mkdir(parents=True)
    (partition / "x-000000000.parquet").write_bytes(b"garbage")
    assert analysis_main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt results file" in err and len(err.splitlines()) == 1
    assert (partition / "x-000000000.parquet").read_bytes() == b"garbage"


def test_help_documents_every_option():
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", "sweep", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (
        "--profile",
        "--seeds",
        "--unroll-steps",
        "--storage",
        "--address",
        "--set",
        "--axis",
        "--name",
        "--gpus-per-trial",
        "--max-failures",
        "--variant",
        "--seeds-per-trial",
        "--cheapest-first",
    ):
        assert option in out


@pytest.mark.parametrize("flag, cheapest_first", [([], False), (["--cheapest-first"], True)])
def test_cheapest_first_reaches_the_sweep_it_orders(flag, cheapest_first, monkeypatch, tmp_path):
    import orchestrator.cli as cli

    class Handed(Exception):
        """Raised with the spec the CLI hands to run_sweep, so that no sweep runs."""

    def run_sweep(spec, **_):
        raise Handed(spec)

    monkeypatch.setattr(cli, "run_sweep", run_sweep)
    with pytest.raises(Handed) as handed:
        cli.main(["sweep", "mog", "--profile", "smoke", "--storage", str(tmp_path), "--no-report", *flag])
    assert handed.value.args[0].cheapest_first is cheapest_first  # start_order reads it (tests/test_progress.py)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc2",
        "..",
        "a/b",
        "/abs",
        ".hidden",
        "a\\b",
        "x" * 101,
        "with space",
        "s3://other-bucket/x",
        "ok/../../up",
    ],
)
@pytest.mark.parametrize("storage", ["local", "s3://bucket/team"])
def test_a_sweep_name_cannot_leave_its_storage(name, storage, capsys, existing_results, monkeypatch):
    monkeypatch.chdir(existing_results)
    import ray

    where = str(existing_results) if storage == "local" else storage
    code, err = run(["sweep", "mog", "--name", name, "--storage", where], capsys)
    assert code == 2 and "sweep name" in err and "is not allowed" in err and len(err.splitlines()) == 1, err
    assert not ray.is_initialized()
    assert sorted(p.name for p in existing_results.iterdir()) == ["mog-quick"]
    assert sorted(p.name for p in existing_results.parent.iterdir() if p.name == "etc2") == []


def test_storage_uris_are_normalised_and_cannot_climb():
    from orchestrator.preflight import storage_uri
    from orchestrator.spec import SweepError

    assert storage_uri("s3://bucket//team/./sweeps/") == "s3://bucket/team/sweeps"
    for bad in ("s3://bucket/../other", "s3://", "s3://bucket/a/../../b"):
        with pytest.raises(SweepError, match="no '..' segment"):
            storage_uri(bad)


def test_dry_run_prints_the_grid_and_its_cost_and_touches_nothing(capsys, tmp_path):
    import ray

    storage = tmp_path / "results"
    code = orchestrator_main(["sweep", "mog", "--profile", "smoke", "--unroll-steps", "0", "2", "--storage",
                              str(storage), "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and not ray.is_initialized() and not storage.exists()
    assert "dry run of sweep mog-smoke: mog/smoke, 2 trials" in out
    assert "unroll_steps=2: 1 seeds x 40 iterations" in out and "projected training time:" in out


def test_status_of_a_folder_without_sweeps_and_of_a_missing_one(capsys, tmp_path):
    assert orchestrator_main(["status", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no sweeps in {tmp_path}"
    code, err = run(["status", str(tmp_path / "nope")], capsys)
    assert code == 2 and err == f"python -m orchestrator: error: no folder at {tmp_path / 'nope'}"


def _status_sweep(tmp_path, written_ago: tuple[float, float, float]):
    """A sweep folder with two trials' rows at steps 0, 100, 200 after 0, 10, 40 s (seed 0, still running) and
    0, 10, 20 s (seed 1, finished) of their own time, of 1,000 iterations; seed 0's rows written the given
    seconds ago."""
    import os
    import time

    from trainables import experiments
    from trainables.grid_point import GridPoint
    from trainables.results import ResultsWriter, TrialIdentity, row_file

    root = tmp_path / "sw" / "parquet"
    for seed, times in ((0, (0.0, 10.0, 40.0)), (1, (0.0, 10.0, 20.0))):
        identity = TrialIdentity("sw", "mog", "smoke", GridPoint((seed,), 0, ()), True)
        config = experiments.get("mog").config("smoke", {"seed": seed, "unroll_steps": 0, "iterations": 1_000})
        w = ResultsWriter(str(root), identity, ["modes"], config.to_json())
        for step, time_s in zip((0, 100, 200), times):
            w.write(step, time_s, {"modes": 1.0}, {}, "finished" if seed == 1 and step == 200 else "running")
    now = time.time()
    for step, ago in zip((0, 100, 200), written_ago):
        os.utime(row_file(str(root), "metrics", "mog", "seed=0,unroll_steps=0", step), (now - ago, now - ago))
    return tmp_path / "sw"


def _lock(sweep, pid: int, started_ago: float) -> None:
    """The sweep's driver lock as a driver of pid on this host, started `started_ago` seconds ago, renewed now."""
    import json
    import socket
    import time

    from trainables.layout import SweepLayout

    now = time.time()
    with open(SweepLayout(str(sweep)).lock_file, "w") as file:
        json.dump(
            {"host": socket.gethostname(), "pid": pid, "started_at": now - started_ago, "heartbeat_at": now}, file
        )


def _status(sweep, capsys, *flags):
    import json

    assert orchestrator_main(["status", str(sweep), *flags]) == 0
    out = capsys.readouterr().out
    return {t["trial_id"]: t for t in json.loads(out)["trials"]} if flags else out.splitlines()


def test_status_gives_a_running_trial_its_rates_over_the_last_report_and_the_time_left(capsys, tmp_path):
    """Seed 0's last interval: 30 s of training for 100 iterations (0.3 s each), its rows written 300 s apart
    (3 s each on the wall: evaluation and sharing the machine count there), the last 400 s ago: 800 x 3 - 400 =
    2,000 s left. A finished trial has a rate and nothing left. A live driver holds the sweep."""
    import os

    sweep = _status_sweep(tmp_path, (1000, 700, 400))
    _lock(sweep, os.getpid(), 2000)
    trials = _status(sweep, capsys, "--json")
    lines = _status(sweep, capsys)
    running, finished = trials["seed=0,unroll_steps=0"], trials["seed=1,unroll_steps=0"]
    assert running["seconds_per_iteration"] == pytest.approx(0.3)
    assert running["wall_seconds_per_iteration"] == pytest.approx(3.0, abs=0.01)
    assert running["seconds_left"] == pytest.approx(2000, abs=5) and running["note"] == ""
    assert running["seconds_since_report"] == pytest.approx(400, abs=5)
    assert finished["seconds_per_iteration"] == pytest.approx(0.1) and finished["seconds_left"] is None
    assert lines[2].endswith("running   200/1,000  3 s/iteration, ~33 min left")
    assert lines[3].endswith("finished  200/1,000")


def test_status_of_rows_copied_elsewhere_falls_back_to_the_training_rate(capsys, tmp_path):
    """Files copied or checked out from git carry the copy's times, seconds apart or equal: no wall rate then,
    the time left at the training rate (800 x 0.3 s), never a rate of 1e-7 s or a negative one."""
    for written_ago in ((5, 5, 5), (5, 5, 6), (100, 95, 90)):  # the last: 0.05 s/iteration, under its 0.3 s training
        running = _status(_status_sweep(tmp_path / str(written_ago), written_ago), capsys, "--json")
        running = running["seed=0,unroll_steps=0"]
        assert running["wall_seconds_per_iteration"] is None and running["seconds_left"] == pytest.approx(240)


def test_status_says_when_a_running_trial_is_not_reporting(capsys, tmp_path):
    """Rows 300 s apart, the last 1,000 s ago: past twice the interval plus 300 s of slack, under a live driver
    (or none: a Tune script of one's own takes no lock) it is overdue, a lost worker; a driver started since
    (a resumed sweep) restarts the wait; when the sweep's driver left its lock and is gone, it is not running,
    whatever its last row says."""
    import os

    from trainables.layout import SweepLayout

    sweep = _status_sweep(tmp_path, (1600, 1300, 1000))
    lock_file = SweepLayout(str(sweep)).lock_file
    lock = functools.partial(_lock, sweep)
    lock(os.getpid(), 2000)  # a live driver, running since before the trial's last row
    overdue = _status(sweep, capsys, "--json")["seed=0,unroll_steps=0"]
    assert overdue["note"].startswith("overdue: no report for 17 min (one every ~5 min)")
    assert overdue["seconds_left"] == pytest.approx(1400, abs=5)
    lock(os.getpid(), 60)  # a driver resumed the sweep a minute ago: the trial is training again
    resumed = _status(sweep, capsys, "--json")["seed=0,unroll_steps=0"]
    assert resumed["note"] == "" and resumed["seconds_since_report"] == pytest.approx(60, abs=5)
    assert resumed["seconds_left"] == pytest.approx(2340, abs=5)
    os.remove(lock_file)
    assert _status(sweep, capsys, "--json")["seed=0,unroll_steps=0"]["note"].startswith("overdue")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock(int(gone.stdout), 2000)
    stopped = _status(sweep, capsys, "--json")["seed=0,unroll_steps=0"]
    assert stopped["note"].startswith("not running: the sweep's driver is gone")
    assert "[not running: the sweep's driver is gone" in _status(sweep, capsys)[2]


def test_a_sweep_prints_its_own_lines_and_keeps_tune_and_ray_behind_verbose(tmp_path):
    argv = [sys.executable, "-m", "orchestrator", "sweep", "mog", "--profile", "smoke", "--seeds", "0",
            "--unroll-steps", "0", "--storage", str(tmp_path), "--no-report"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    for noise in ("Configuration for experiment", "TensorBoard", "Token authentication is enabled"):
        assert noise not in output
    assert "ran mog-smoke: 1/1 trials ran to their end" in done.stdout
    assert "(too short to say how well trials were packed)" in done.stdout and "x the ideal" not in done.stdout


def test_list_says_what_each_profile_sets_beside_the_defaults(capsys):
    assert orchestrator_main(["list"]) == 0
    out = capsys.readouterr().out
    image = out[out.index("\nimage\n") :]
    smoke = image[image.index("profile smoke") :].splitlines()
    assert smoke[1].strip().startswith("sets dataset=mnist,")  # not the cifar10 default shown further down
    assert "dataset=cifar10" in image[image.index("config fields and their defaults") :].splitlines()[0]
