"""Sweeps on real engines: a Ray cluster, submitit's local executor and a one-node SLURM
cluster each run the same standalone train sweep as Hydra's basic launcher, and give the same
bytes; a Ray worker killed mid-sweep fails its job only, and `+resume=true` finishes it.

Every sweep runs with OMP_NUM_THREADS=1: Ray sets it to a job's `num_cpus` (1 here), and with
more threads scikit-learn's histogram GBM and BLAS add in another order, so the last bits of a
model would differ between launchers for a reason that is not the launcher's.

The Ray cluster (one per module) and the SLURM daemons are the tests' own: started here on
127.0.0.1 with a private temp dir, token or munge key, and stopped here by their pids.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, env, stage
from tests.processes import free_port, stop_process_group
from tests.ray_cluster import LOOPBACK, RayCluster, listening_addresses, naming, stop_leftovers

pytestmark = pytest.mark.slow

SWEEP = ("model=hgb,logreg", "mitigation=none")  # #0, the one killed below, the longer
THREADS = {"OMP_NUM_THREADS": "1"}
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="the ray extra is not installed (uv sync --extra ray)")
needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("submitit") is None,
    reason="the slurm extra is not installed (uv sync --extra slurm)")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def results(sweep: Path, jobs: int = 2) -> dict[int, tuple[str, str]]:
    """Each job's model and train report, by sha256."""
    return {j: (_sha(sweep / str(j) / "artifacts" / "model.pkl"),
                _sha(sweep / str(j) / "reports" / "train.json")) for j in range(jobs)}


def train_sweep(built: Path, sweep: Path, *extra: str, **extra_env: str):
    return stage(ROOT, "train", "-m", *SWEEP, f"+inputs={built}", f"hydra.sweep.dir={sweep}",
                 *extra, **{**THREADS, **extra_env})


@pytest.fixture(scope="module")
def basic(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same sweep under Hydra's basic launcher, in this process's order."""
    sweep = tmp_path_factory.mktemp("basic") / "sweep"
    proc = train_sweep(built, sweep)
    assert proc.returncode == 0, proc.stderr
    return sweep


def test_resume_runs_only_unfinished_jobs_and_a_plain_rerun_runs_them_all(basic, built,
                                                                         tmp_path):
    """Any launcher (the basic one here): job #1 lost its model, so +resume=true reruns #1
    and skips #0; without +resume, Hydra runs every job again into the same folders."""
    sweep = tmp_path / "sweep"
    shutil.copytree(basic, sweep)
    (sweep / "1" / "artifacts" / "model.pkl").unlink()
    kept = (sweep / "0" / "artifacts" / "model.pkl").stat().st_mtime_ns

    resumed = train_sweep(built, sweep, "+resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("skipped (+resume)") == 1
    assert (sweep / "0" / "artifacts" / "model.pkl").stat().st_mtime_ns == kept
    assert results(sweep) == results(basic)

    plain = train_sweep(built, sweep)
    assert plain.returncode == 0, plain.stderr
    assert "skipped" not in plain.stderr
    assert (sweep / "0" / "artifacts" / "model.pkl").stat().st_mtime_ns != kept
    assert results(sweep) == results(basic)


def test_under_the_basic_launcher_a_refused_job_stops_the_sweep(built, tmp_path):
    sweep = tmp_path / "sweep"
    proc = stage(ROOT, "train", "-m", "model=logreg", "mitigation=none", "seed=-1,3",
                 f"+inputs={built}", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert not (sweep / "1").exists(), "the job after the refused one never ran"


# --- Ray --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = RayCluster(**THREADS)
    try:
        cluster.wait_for_address()
        assert listening_addresses(naming(cluster.dir)) <= {"127.0.0.1", "::ffff:127.0.0.1"}
        yield cluster
    finally:
        cluster.stop()


def driver_env(cluster: RayCluster) -> dict[str, str]:
    """A sweep's environment: the cluster's token; loopback mode is the launcher's to set."""
    return {k: v for k, v in cluster.env.items() if k != LOOPBACK}


def ray_args(address: str) -> tuple[str, ...]:
    return ("hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}")


@needs_ray
def test_ray_sweep_with_a_killed_worker_then_resumed_gives_the_basic_launchers_results(
        ray_cluster, basic, built, tmp_path):
    """On the cluster, job #0's worker is killed as soon as it opens the job's log: #0 is
    reported, #1 (running beside it) still finishes, the sweep exits 1 and names the rerun.
    The rerun with +resume=true (on a local Ray this time, `address: null`, which the launcher
    keeps on loopback by itself) runs #0 only, and the sweep then holds exactly what the basic
    launcher made."""
    sweep = tmp_path / "sweep"
    args = ["-m", *SWEEP, f"+inputs={built}", f"hydra.sweep.dir={sweep}"]
    with (tmp_path / "err").open("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.train", *args, *ray_args(ray_cluster.address)],
            cwd=ROOT, env=env(**driver_env(ray_cluster)), stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline, victims = time.monotonic() + 180, []
            while not victims and proc.poll() is None and time.monotonic() < deadline:
                victims = ray_cluster.workers_with_open(sweep / "0" / "train.log")
                time.sleep(0.1)
            assert victims, "job #0 never started in a Ray worker"
            for v in victims:
                v.kill()
            proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read()
    assert not any(psutil.pid_exists(v.pid) for v in victims)
    assert proc.returncode == 1, stderr
    assert "Ray launcher: job #0 (model=hgb" in stderr, stderr
    assert "1 of 2 jobs failed" in stderr and "+resume=true" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert not (sweep / "0" / "artifacts" / "model.pkl").exists(), "half a job's outputs"
    assert not (sweep / "0" / ".train.done").exists()
    assert (sweep / "1" / ".train.done").exists()
    finished = (sweep / "1" / "artifacts" / "model.pkl").stat().st_mtime_ns

    local = Path(tempfile.mkdtemp(prefix="govpipe-ray-"))
    try:
        again = stage(ROOT, "train", *args, *ray_args("null"), "+resume=true",
                      "hydra.launcher.ray.init.num_cpus=2",
                      f"+hydra.launcher.ray.init._temp_dir={local}", **driver_env(ray_cluster))
        raylet = (local / "session_latest" / "logs" / "raylet.out").read_text()
    finally:
        stop_leftovers(local)
        shutil.rmtree(local, ignore_errors=True)
    assert again.returncode == 0, again.stderr
    assert "ConfigStore schema" not in again.stderr, "ray.yaml shadows the plugin's on purpose"
    assert "Started a local Ray instance" in again.stderr
    assert "node_manager address: 127.0.0.1:" in raylet, "a local Ray listens on loopback"
    assert again.stderr.count("already finished with this config; skipped (+resume)") == 1
    assert "Ray launcher: all 2 jobs finished" in again.stderr
    assert (sweep / "1" / "artifacts" / "model.pkl").stat().st_mtime_ns == finished
    assert results(sweep) == results(basic)


@needs_ray
def test_a_stage_refusing_its_config_under_ray_fails_that_job_once_and_exits_2(
        ray_cluster, built, tmp_path):
    """A job's own exit (a user error, logged) is a failed job: not a crashed worker that Ray
    would run four times, and no traceback; the other job finishes."""
    sweep = tmp_path / "sweep"
    proc = stage(ROOT, "train", "-m", "model=logreg", "mitigation=none", "seed=3,-1",
                 f"+inputs={built}", f"hydra.sweep.dir={sweep}", *ray_args(ray_cluster.address),
                 **driver_env(ray_cluster))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "1 of 2 jobs failed: #1 (model=logreg mitigation=none seed=-1" in proc.stderr
    assert (sweep / "1" / "train.log").read_text().count("train failed: ") == 1
    assert (sweep / "0" / ".train.done").exists() and not (sweep / "1" / "artifacts").exists()


# --- submitit: local executor and SLURM -------------------------------------------------------

@needs_submitit
def test_submitit_local_sweep_gives_the_basic_launchers_results(basic, built, tmp_path):
    sweep = tmp_path / "sweep"
    proc = train_sweep(built, sweep, "hydra/launcher=submitit_local")
    assert proc.returncode == 0, proc.stderr
    assert list((sweep / ".submitit").glob("*/*_result.pkl")), "the jobs ran through submitit"
    assert results(sweep) == results(basic)


class Slurm:
    """munged, slurmctld and slurmd for one node, all in a temp dir, on 127.0.0.1 (the
    NoInAddrAny parameters bind them to the host's address, loopback here)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="govpipe-slurm-"))
        d, host = self.dir, socket.gethostname().split(".")[0]
        (d / "munge").mkdir(mode=0o700)
        for sub in ("state", "spool", "log"):
            (d / sub).mkdir()
        key = d / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        self.socket = d / "munge" / "socket"
        self.procs: list[subprocess.Popen] = []
        self.env = {"SLURM_CONF": str(d / "slurm.conf")}
        self.key, self.host = key, host

    def start(self) -> None:
        d, key, host = self.dir, self.key, self.host
        self._start(["munged", "--foreground", "--force", f"--key-file={key}",
                     f"--socket={self.socket}", f"--pid-file={d / 'munge' / 'pid'}",
                     f"--log-file={d / 'munge' / 'log'}", f"--seed-file={d / 'munge' / 'seed'}"])
        _wait(lambda: self.socket.exists(), "munged")
        ctld, slurmd = free_port(), free_port()
        self.conf = d / "slurm.conf"
        self.conf.write_text(f"""\
ClusterName=govpipe-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
        self._start(["slurmctld", "-D", "-f", str(self.conf)])
        self._start(["slurmd", "-D", "-f", str(self.conf), "-N", host])
        _wait(self._idle, "an idle SLURM node")

    def _start(self, cmd: list[str]) -> None:
        self.procs.append(subprocess.Popen(cmd, cwd=self.dir, env=env(**self.env),
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))

    def _squeue(self) -> str:
        return subprocess.run(["squeue", "-h", "-o", "%i"], env=env(**self.env),
                              capture_output=True, text=True).stdout.strip()

    def _idle(self) -> bool:
        for p in self.procs:
            if p.poll() is not None:
                logs = "\n".join(f.read_text() for f in (self.dir / "log").glob("*.log"))
                raise AssertionError(f"{p.args[0]} exited {p.returncode}:\n{logs}")
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env(**self.env),
                             capture_output=True, text=True)
        return out.stdout.strip() == "idle"

    def stop(self) -> None:
        # Jobs first: a job step (slurmstepd, srun) whose controller is gone waits for it
        # forever. submitit returns once the results are written, before the steps end.
        if any(p.poll() is None for p in self.procs):
            _wait(lambda: not self._squeue(), "an empty SLURM queue", timeout=30, fail=False)
            subprocess.run(["scancel", "--partition=test"], env=env(**self.env),
                           capture_output=True)
        for p in reversed(self.procs):
            stop_process_group(p)
        for p in psutil.process_iter():  # what is left of our jobs, by our SLURM_CONF
            try:
                if p.environ().get("SLURM_CONF") == self.env["SLURM_CONF"]:
                    p.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait(ready, what: str, timeout: float = 60, fail: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    if fail:
        raise AssertionError(f"no {what} after {timeout} s")


def _slurm_missing() -> str | None:
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")
               if shutil.which(c) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)}: Debian's slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "a test SLURM node needs root (slurmd starts jobs as their users)"
    if not socket.gethostbyname(socket.gethostname()).startswith("127."):
        return "this host's name does not resolve to loopback, so SLURM would listen outside it"
    return None


@pytest.fixture(scope="module")
def slurm() -> Iterator[Slurm]:
    reason = _slurm_missing()
    if reason:
        pytest.skip(reason)
    cluster = Slurm()
    try:
        cluster.start()
        daemons = [psutil.Process(p.pid) for p in cluster.procs]
        assert listening_addresses(daemons) == {"127.0.0.1"}, "SLURM listens on loopback only"
        yield cluster
    finally:
        cluster.stop()


@needs_submitit
def test_slurm_sweep_gives_the_basic_launchers_results(slurm, basic, built, tmp_path):
    """conf/hydra/launcher/slurm.yaml on a real slurmctld + slurmd, resources cut to this node.
    (The test cluster has no accounting, so submitit warns that sacct fails: it still sees
    each job finish by its result file.)"""
    sweep = tmp_path / "sweep"
    proc = train_sweep(built, sweep, "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1",
                       "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=10",
                       **slurm.env)
    assert proc.returncode == 0, proc.stderr
    ctld_log = (slurm.dir / "log" / "slurmctld.log").read_text()
    assert ctld_log.count("Allocate JobId=") >= 2, "the jobs ran as SLURM jobs"
    assert results(sweep) == results(basic)
