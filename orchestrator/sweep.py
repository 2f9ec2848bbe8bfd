"""Turn a SweepSpec into a Ray Tune run: new, or resumed where an earlier run of it stopped.

Resuming is the trials' own business: each keeps its state in ``<sweep>/trial_state/`` (see
``trainables.trial_state.TrialStateFile``), so a re-run starts a new Tune run over the same grid and
every trial continues from its state, a finished one returning at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import pyarrow.fs as pafs
import ray
from ray import tune
from ray.exceptions import AuthenticationError

from trainables import artifacts, experiments, ray_adapter
from trainables.errors import DatasetError, TrialStateError
from trainables.grid_point import GridPoint
from trainables.layout import SweepLayout
from trainables.ray_adapter import trial_id_of
from trainables.results import ResultsError, final_rows, load_metrics
from trainables.storage import filesystem_and_path, read_file, write_atomically
from trainables.trial_state import TrialStateFile

from .lock import SweepLock
from .preflight import (
    SweepError,
    check_address_reachable,
    check_local_gpus,
    check_storage_writable,
    cuda_graphs_refused,
    storage_uri,
)
from .progress import SweepProgress
from .spec import SweepSpec

# Environment for every trial process: the trial's working directory stays where it was
# started (relative paths keep working), and Tune's experiment-sync warning stays quiet
# for short trials that report often.
TRIAL_ENV = {
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    # Read once, when cuBLAS starts in a process: deterministic GPU matmuls (GANConfig.deterministic) need it
    # set before any trial in that process runs; it costs a few MiB of GPU memory and nothing on a CPU.
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
}


S3_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@dataclass
class SweepResult:
    spec: SweepSpec
    path: str
    """The sweep's folder (Tune experiment) under the storage location."""
    results_dir: str
    """Its Parquet datasets (``metrics/``, ``samples/``)."""
    resumed: bool
    """An earlier run of this sweep had left its grid or trial state in storage."""
    finished: int
    """Trials whose rows say they ran to their end (this run or an earlier one), diverged ones included (a
    divergence is a result)."""
    errors: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    """'<trial_id> at step N' for each trial whose training diverged."""
    wall_s: float = 0.0
    """Wall time of the Tune run."""
    trial_s: float = 0.0
    """The trials' own run times, added up (Tune's time_total_s)."""
    slots: int = 1
    """How many trials could run at once (cluster CPUs / CPUs per trial, capped by the grid)."""
    interrupted_by: str | None = None
    """'SIGINT' or 'SIGTERM' when a signal stopped the sweep before every trial ended (Tune stops its trials and
    returns; a re-run resumes them)."""

    @property
    def packing(self) -> float:
        """Wall time over the ideal (trial time / slots): 1.0 means no core ever waited for work."""
        ideal = self.trial_s / max(self.slots, 1)
        return self.wall_s / ideal if ideal > 0 else float("nan")

    @property
    def ok(self) -> bool:
        return not self.errors and self.finished == self.spec.num_trials and self.interrupted_by is None


class Interrupted(Exception):
    """A signal (SIGINT, SIGTERM) stopped the sweep before Tune ran; nothing of it was lost."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


class _Signals:
    """Which stop signal the driver got. SIGTERM (a cluster's or a scheduler's stop) is turned into SIGINT, which
    Tune answers by stopping its trials and returning (``tune.run``'s own handler); outside Tune's run, SIGINT is
    Python's KeyboardInterrupt. Either way the sweep ends as interrupted, never as finished."""

    def __init__(self):
        self.received: str | None = None

    def _on_int(self, signum, frame):
        self.received = self.received or "SIGINT"
        raise KeyboardInterrupt

    def _on_term(self, signum, frame):
        self.received = self.received or "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)

    def arm_sigterm(self) -> None:
        """(Again:) ray.init installs a SIGTERM handler of its own that kills the local cluster and exits 1."""
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            signal.signal(signal.SIGTERM, self._on_term)

    @contextlib.contextmanager
    def watching(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous_int, previous_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGINT, self._on_int)
        self.arm_sigterm()
        try:
            yield self
        except KeyboardInterrupt:
            raise Interrupted(self.received or "SIGINT") from None
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)


def run_sweep(
    spec: SweepSpec, address: str | None = None, progress: bool = True, progress_every_s: float = 10.0,
    discard_corrupt_state: bool = False, verbose: bool = False,
) -> SweepResult:  # fmt: skip
    """Run (or resume) a sweep to completion. Every input check happens before Ray starts.

    `discard_corrupt_state`: an unreadable trial state (a truncated file, say) is moved to
    ``trial_state/corrupt/`` and its trial trains again from step 0, rewriting its rows; without it
    such a file stops the sweep here with one line naming it. `verbose`: Tune's and Ray's own output
    (Tune's experiment box and status table, the TensorBoard hint, Ray's start-up warnings) beside the sweep's.
    """
    spec = spec.resolved()
    storage = storage_uri(spec.storage)
    check_storage_writable(storage)
    check_address_reachable(address)
    if address is None and not ray.is_initialized():  # a local Ray would start with this machine's GPUs
        check_local_gpus(spec.gpus_per_trial, spec.cuda_graphs)
    path = f"{storage}/{spec.name}"
    spec_saved = _check_same_grid(path, spec)
    resumed = spec_saved or _has_trial_state(path)
    created = "://" not in path and not os.path.exists(path)
    try:
        with _Signals().watching() as signals, SweepLock(path, spec.name):
            if resumed:
                _check_trial_states(path, discard_corrupt_state, progress)
            result = _run_locked(
                spec, address, progress, progress_every_s, storage, path, spec_saved, resumed, verbose, signals
            )
            if result.finished < spec.num_trials and not result.errors:
                # Tune returns normally from a stop signal, its unfinished trials without an error.
                result.interrupted_by = signals.received or "SIGINT"
            return result
    except SweepError:
        if created:  # bad input found while preparing: leave no trace of a sweep that never started
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise


def _run_locked(
    spec: SweepSpec, address: str | None, progress: bool, progress_every_s: float, storage: str, path: str,
    spec_saved: bool, resumed: bool, verbose: bool = False, signals: _Signals | None = None,
) -> SweepResult:  # fmt: skip
    experiment = experiments.get(spec.experiment)
    manifest = _published_artifacts(experiment, spec, path, progress)

    trial_env = dict(TRIAL_ENV)
    if storage.startswith("s3://"):
        # pyarrow reads the S3 endpoint and credentials from the environment; trials on other
        # nodes need the driver's values (an S3-compatible store's endpoint, for instance).
        trial_env.update({k: os.environ[k] for k in S3_ENV if k in os.environ})

    # Tune's new output engine prints its experiment box and TensorBoard hint whatever `verbose` says; the
    # old one prints nothing at verbose 0. The sweep prints its own progress (SweepProgress). Tune reads these
    # in this process; the caller's environment is put back afterwards.
    driver_env = {**TRIAL_ENV, "RAY_AIR_NEW_OUTPUT": "1" if verbose else "0"}
    started_here = not ray.is_initialized()
    with _environment(driver_env):
        if started_here:
            _start_ray(address, trial_env, verbose)
            if signals is not None:
                signals.arm_sigterm()
        try:
            return _run_tune(spec, experiment, manifest, storage, path, spec_saved, resumed, progress,
                             progress_every_s, verbose)  # fmt: skip
        finally:
            if started_here:
                ray.shutdown()


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """`values` set in os.environ for the block, and the caller's environment as it was afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_tune(
    spec: SweepSpec, experiment, manifest: dict, storage: str, path: str, spec_saved: bool, resumed: bool,
    progress: bool, progress_every_s: float, verbose: bool,
) -> SweepResult:  # fmt: skip
    gpus_per_trial = _gpus_per_trial(spec, experiment)
    if gpus_per_trial == 0 and spec.cuda_graphs:
        raise cuda_graphs_refused("the Ray cluster has no GPU")
    if gpus_per_trial > 0:
        probe_cuda(gpus_per_trial, progress)
    if not spec_saved:
        # Before Tune writes anything, after the checks that need Ray: a sweep folder always has
        # its grid on record, however early the driver is killed, and a refused sweep leaves none.
        _write_spec(path, spec)
    # The same public trainable a Tune script of your own uses; the sweep's settings travel in it,
    # each trial's Tune config holds only its grid point.
    trainable = ray_adapter.trainable(
        spec.experiment, spec.profile, overrides=spec.overrides, cpus_per_trial=spec.cpus_per_trial,
        gpus_per_trial=gpus_per_trial, artifacts_manifest=manifest,
    )  # fmt: skip
    # Always a new Tune run, never Tuner.restore: each trial's own state file says how far
    # it got (a finished one returns at once), so Tune's record of an earlier run is not
    # needed, and nothing depends on the layout of Tune's private state files.
    param_space = ray_adapter.grid_config(start_order(spec.tune_points(), spec.cheapest_first))
    tuner = _new_tuner(trainable, param_space, spec, storage, experiment, progress, progress_every_s, verbose)
    slots = _slots(spec)
    start = time.monotonic()
    grid = tuner.fit()
    wall_s = time.monotonic() - start
    errors = [f"{trial_id_of(r.config)}: {_last_line(r.error)} ({r.path})" for r in grid if r.error is not None]
    trial_s = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in grid)
    # From the rows, not from Tune: a trial Tune stopped (a signal) returns without an error, unfinished.
    finished, diverged = _endings(path, {p.trial_id for p in spec.grid_points()})
    return SweepResult(
        spec, path, SweepLayout(path).parquet, resumed, finished, errors, diverged, wall_s, trial_s, slots
    )  # fmt: skip


def start_order(points: list[GridPoint], cheapest_first: bool = False) -> list[GridPoint]:
    """The order Tune starts the trials in: most expensive first (``GridPoint.cost_order``), so no long trial
    runs alone at the end; or, on request, cheapest first. Seeds stay ascending within a cost either way."""
    if cheapest_first:
        return sorted(points, key=lambda point: [-cost for cost in point.cost_order()[:-1]])
    return sorted(points, key=GridPoint.cost_order)


QUIET_UNLESS_VERBOSE = (
    # "Token authentication is enabled for this Ray cluster": true, and said in the README; not a warning a
    # sweep's user needs at every start. Authentication itself stays on.
    "ray._private.authentication.authentication_token_setup",
    # On an interrupt Tune says "Resume experiment with: Tuner.restore(...)", which does not resume a sweep (the
    # same command does, from the trial states), and lists every trial it found no result file for.
    "ray.tune.tune",
    "ray.tune.analysis.experiment_analysis",
)
"""Ray's and Tune's loggers whose warnings a sweep holds back unless --verbose."""


def _start_ray(address: str | None, trial_env: dict[str, str], verbose: bool = False) -> None:
    for name in QUIET_UNLESS_VERBOSE:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)

    # Refused by a cluster, Ray's C++ client logs a warning a second for about 20 s before
    # giving up, straight to file descriptor 2; hold that back to name the cause in one line.
    # A new local cluster's daemons inherit this process's stderr, so there it is left be.
    with _stderr_held() if address else contextlib.nullcontext(_Held()) as held:
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": trial_env},
                configure_logging=True,
                logging_level="WARNING",
            )
            error = None
        except (ConnectionError, RuntimeError, AuthenticationError) as raised:
            error = raised
    if error is None:
        sys.stderr.write(held.text)  # connected: nothing is hidden
    elif address is None:
        raise SweepError(f"could not start a local Ray cluster: {error}") from None
    elif "InvalidAuthToken" in held.text or isinstance(error, AuthenticationError):
        raise SweepError(
            f"could not connect to Ray at {address}: the cluster refused this client's token (none "
            f"found, or not the cluster's); point RAY_AUTH_TOKEN_PATH at the cluster's token or copy "
            f"it to ~/.ray/auth_token"
        ) from None
    else:
        raise SweepError(f"could not connect to Ray at {address}: {_last_line(error)}") from None


@dataclass
class _Held:
    text: str = ""


@contextlib.contextmanager
def _stderr_held():
    held = _Held()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buffer.seek(0)
            held.text = buffer.read().decode(errors="replace")


def _new_tuner(
    trainable, param_space: dict, spec: SweepSpec, storage: str, experiment, progress: bool, progress_every_s: float,
    verbose: bool = False,
):  # fmt: skip
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True, trial_dirname_creator=_trial_dirname
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=storage,
            verbose=1 if verbose else 0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            callbacks=[SweepProgress(len(spec.tune_points()), headline=_headline(experiment), every_s=progress_every_s)]
            if progress
            else [],
        ),
    )


def _published_artifacts(experiment, spec: SweepSpec, path: str, progress: bool) -> dict:
    """The sweep's data and metric models, published once; a resumed sweep keeps its own."""
    try:
        manifest = artifacts.read_manifest(path)
        if manifest is not None or experiment.prepare is None:
            return manifest or {}
        if progress:
            print(f"preparing {spec.experiment} (data and metric models, once, for every trial)...", flush=True)
        return artifacts.publish(path, experiment.prepare(experiment.config(spec.profile, spec.overrides)))
    except DatasetError as error:
        raise SweepError(str(error)) from None


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}_{trial_id_of(trial.config)}"


def _gpus_per_trial(spec: SweepSpec, experiment) -> float:
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if spec.gpus_per_trial is None:
        return experiment.gpu_fraction if cluster_gpus else 0.0
    if spec.gpus_per_trial > 0 and not cluster_gpus:
        # Tune would otherwise wait for ever for a GPU that never comes.
        raise SweepError(
            f"--gpus-per-trial {spec.gpus_per_trial:g}: the Ray cluster has no GPU (an autoscaling cluster "
            f"must keep a GPU worker up: cluster.yaml's gpu_worker min_workers)"
        )
    largest = max((node["Resources"].get("GPU", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    if spec.gpus_per_trial > largest:
        raise SweepError(
            f"--gpus-per-trial {spec.gpus_per_trial:g}: no node of the Ray cluster has that many "
            f"(the largest has {largest:g}); a trial runs on one node"
        )
    return spec.gpus_per_trial


CUDA_PROBE_TIMEOUT_S = 600.0
"""How long the CUDA probe waits for a GPU to be free (another sweep's trials may hold them all)."""


def probe_cuda(gpus_per_trial: float, progress: bool = True, timeout_s: float = CUDA_PROBE_TIMEOUT_S) -> str:
    """Run one task with a trial's GPU share and check that torch there can use CUDA: a CPU-only torch on a
    GPU node is then one line here, not a traceback in every trial. Returns the device's name."""

    @ray.remote(num_gpus=gpus_per_trial, max_retries=0)
    def cuda_seen_by_torch() -> tuple[bool, str, str]:
        import socket

        import torch

        if not torch.cuda.is_available():
            return False, f"torch {torch.__version__} (CUDA build: {torch.version.cuda})", socket.gethostname()
        return True, torch.cuda.get_device_name(), socket.gethostname()

    if progress:
        print(f"checking that torch on a GPU node can use CUDA (a task with {gpus_per_trial:g} GPU)...", flush=True)
    ref = cuda_seen_by_torch.remote()
    try:
        usable, what, host = ray.get(ref, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        raise SweepError(
            f"--gpus-per-trial {gpus_per_trial:g}: no GPU became free for a check within {timeout_s:g} s"
        ) from None
    if not usable:
        raise SweepError(
            f"--gpus-per-trial {gpus_per_trial:g}: {what} on node {host} cannot use its GPU; install a CUDA build "
            f"of torch there (cluster.yaml's setup does, and checks it)"
        )
    return what


def _headline(experiment) -> tuple[str, ...]:
    return tuple(list(experiment.metrics)[:2])


def _check_same_grid(path: str, spec: SweepSpec) -> bool:
    """False when the sweep has no grid on record yet; raises when it has another grid."""
    spec_file = SweepLayout(path).spec_file
    data = read_file(*filesystem_and_path(spec_file))
    if data is None:
        return False
    try:
        saved = json.loads(data)["grid"]
    except (ValueError, KeyError):
        raise SweepError(f"{spec_file} is corrupt; move the sweep away or pass --name") from None
    wanted = json.loads(json.dumps(spec.grid_identity()))  # as it reads back: tuples become lists
    if saved != wanted and not _trained_anything(path):
        # An earlier run of this name stopped before any trial trained (refused by Ray, killed at
        # start-up): its grid record protects no result, so this run's grid replaces it.
        return False
    if saved != wanted:
        changed = sorted(k for k in {*saved, *wanted} if saved.get(k) != wanted.get(k))
        raise SweepError(
            f"sweep {spec.name!r} at {path} was started with a different {', '.join(changed)}; "
            f"re-run it unchanged to resume, or pass --name for a new sweep"
        )
    return True


def _endings(path: str, trial_ids: set[str]) -> tuple[int, list[str]]:
    """From the rows, read once: how many of these trials have a last row that ends them (finished or diverged),
    and '<trial_id> at step N' for each that diverged (in this run of the sweep or an earlier one)."""
    try:
        final = final_rows(load_metrics(path), include_ended_early=True)
    except ResultsError:
        return 0, []
    ended = final[final["status"].isin(("finished", "diverged")) & final["trial_id"].isin(trial_ids)]
    diverged = ended[ended["status"] == "diverged"]
    return len(ended), [f"{row.trial_id} at step {row.step}" for row in diverged.itertuples()]


def _slots(spec: SweepSpec) -> int:
    by_cpu = int(ray.cluster_resources().get("CPU", 1) // spec.cpus_per_trial)
    return max(1, min(by_cpu, spec.max_concurrent_trials or by_cpu, len(spec.tune_points())))


def _check_trial_states(path: str, discard: bool, progress: bool) -> None:
    """Every saved trial state must load, or a resumed trial would fail on it at every retry and every re-run."""
    for state_file in TrialStateFile.all_in(SweepLayout(path)):
        try:
            state_file.load()
        except TrialStateError as error:
            if not discard:
                raise SweepError(str(error)) from None
            moved = state_file.set_aside()
            if progress:
                print(f"set aside unreadable trial state {state_file.path} as {moved}: that trial trains again "
                      f"from step 0", flush=True)  # fmt: skip


def _trained_anything(path: str) -> bool:
    """Whether any trial of the sweep has saved a state or written a row."""
    if _has_trial_state(path):
        return True
    fs, root = filesystem_and_path(SweepLayout(path).metrics)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return False
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return any(info.base_name.endswith(".parquet") and not info.base_name.startswith(".") for info in found)


def _has_trial_state(path: str) -> bool:
    return bool(TrialStateFile.all_in(SweepLayout(path)))


def _write_spec(path: str, spec: SweepSpec) -> None:
    fs, spec_file = filesystem_and_path(SweepLayout(path).spec_file)
    text = json.dumps({"grid": spec.grid_identity(), "spec": json.loads(spec.to_json())}, indent=2)
    # Atomic: a driver killed mid-write must not leave a half file that blocks every re-run.
    write_atomically(fs, spec_file, lambda out: out.write(text.encode()))


def _last_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
