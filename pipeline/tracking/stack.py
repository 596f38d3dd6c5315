"""A production-like registry on one machine, and the preflight checks of a real one.

    python -m pipeline.tracking.stack up [--dir .stack]     # make stack
    python -m pipeline.tracking.stack down [--dir .stack]   # make stack-down
    python -m pipeline.tracking.stack server --backend-store-uri postgresql://USER@HOST/DB \
        --artifacts-destination s3://BUCKET/PREFIX [--port 5000]

`up` starts, on 127.0.0.1 only: a throw-away PostgreSQL cluster (Debian's binaries, initdb in a
temp dir), an S3 endpoint (moto's server, in memory) with a bucket, and `mlflow server` with
`--backend-store-uri postgresql://…` and `--artifacts-destination s3://…` (proxied artefacts:
the pipeline and the model server talk HTTP to MLflow only and need no S3 credentials). The
tests start the same `Stack`. `server` runs the same `mlflow server` command line against
services someone else runs (RDS/Cloud SQL, S3/GCS), after the same checks.

Credentials come from the environment only and are never printed or put on a command line:
PostgreSQL's from `PGPASSWORD` / `PGPASSFILE` (libpq reads them), S3's from the AWS variables
or `AWS_SHARED_CREDENTIALS_FILE`. A local stack without them generates throw-away ones and keeps
them in files of mode 0600 under its directory (a libpq password file, an AWS credentials
file). Every check names the component that failed; retries are bounded.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.runtime.errors import PipelineError

HOST = "127.0.0.1"
DEFAULT_PORTS = {"postgres": 54329, "s3": 59000, "mlflow": 5000}  # mlflow: conf/registry/server
DB, USER, BUCKET = "mlflow", "govpipe", "govpipe-mlflow"
# mlflow server and moto hold no state of their own (it is in PostgreSQL and the bucket):
# SIGTERM, then SIGKILL after this long (uvicorn otherwise waits on idle keep-alive clients).
STOP_GRACE = 5.0


class StackError(PipelineError):
    """A component of the stack is missing, unreachable or refused us; the message names it."""


def redact(uri: str) -> str:
    return re.sub(r"//[^/@]+@", "//***@", uri)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


# -- preflight checks (local stack and managed services alike) -----------------------------------
def check_postgres(uri: str, env: dict[str, str], attempts: int = 5,
                   backoff: float = 0.5) -> None:
    """Connect once to the backend store. Authentication and a missing database are answers
    (not retried); a refused or timed-out connection is retried `attempts` times."""
    import psycopg2

    kwargs = {k: env[v] for k, v in (("password", "PGPASSWORD"), ("passfile", "PGPASSFILE"))
              if env.get(v)}
    for attempt in range(attempts):
        try:
            psycopg2.connect(_libpq_uri(uri), connect_timeout=5, **kwargs).close()
            return
        except psycopg2.OperationalError as e:
            reason = _pg_reason(e)
            final = any(w in reason for w in ("authentication", "does not exist", "no password"))
            if final or attempt == attempts - 1:
                hint = (" (credentials come from PGPASSWORD or PGPASSFILE)"
                        if "authentication" in reason or "password" in reason else "")
                raise StackError(f"PostgreSQL (MLflow's backend store {redact(uri)}): "
                                 f"{reason}{hint}; after {attempt + 1} attempt(s)") from None
            time.sleep(backoff * 2**attempt)


def _libpq_uri(uri: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", uri)  # SQLAlchemy's driver suffix


def _pg_reason(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # libpq: 'connection to server at "h" (h), port p failed: FATAL:  password authentication…'
    text = " ".join(lines)
    m = re.search(r"failed: (.*)", text)
    return re.sub(r"\s+", " ", m[1] if m else text)[:300] or type(e).__name__


def s3_client(endpoint: str | None, env: dict[str, str]):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    ) if env.get("AWS_ACCESS_KEY_ID") else boto3.session.Session(
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"))
    return session.client("s3", endpoint_url=endpoint, config=Config(
        connect_timeout=5, read_timeout=10, retries={"max_attempts": 1}))


def check_bucket(destination: str, endpoint: str | None, env: dict[str, str],
                 attempts: int = 5, backoff: float = 0.5) -> None:
    """The artefact store's bucket exists and these credentials may read it."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    m = re.fullmatch(r"s3://([^/]+)(/.*)?", destination)
    if not m:
        raise StackError(f"artifact store: '{destination}' is not an s3://BUCKET[/PREFIX] URI")
    where = f"S3 (MLflow's artefact store {destination} at {endpoint or 'AWS'})"
    client = s3_client(endpoint, env)
    for attempt in range(attempts):
        try:
            client.head_bucket(Bucket=m[1])
            return
        except NoCredentialsError:
            raise StackError(f"{where}: no credentials (set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE)") from None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket"):
                raise StackError(f"{where}: bucket '{m[1]}' does not exist") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StackError(f"{where}: access denied to bucket '{m[1]}' (check the AWS "
                                 "credentials in the environment)") from None
            error: Exception = e
        except BotoCoreError as e:
            error = e
        if attempt == attempts - 1:
            raise StackError(f"{where}: unreachable after {attempts} attempt(s) "
                             f"({type(error).__name__})") from None
        time.sleep(backoff * 2**attempt)


def wait_http(url: str, what: str, timeout: float, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited {proc.returncode} while starting"
                             + (f"; its log ({log}) ends:\n{_tail(log)}" if log else ""))
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.3)
    raise StackError(f"{what} did not answer {url} within {timeout:.0f} s")


def _tail(log: Path, n: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def mlflow_command(port: int, backend: str, destination: str, host: str = HOST,
                   workers: int = 1) -> list[str]:
    """The tracking server's command line: the same for the local stack, the tests, the
    Dockerfile-less production deployment (README "Production")."""
    return [str(Path(sys.executable).with_name("mlflow")), "server", "--host", host,
            "--port", str(port), "--backend-store-uri", backend,
            "--artifacts-destination", destination, "--serve-artifacts",
            "--workers", str(workers)]


# -- the local stack --------------------------------------------------------------------------
def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise StackError(f"PostgreSQL: '{name}' not found (install Debian's 'postgresql' "
                         "package: apt-get install postgresql)")
    return found


class Stack:
    """PostgreSQL + S3 endpoint + mlflow server, started and stopped together.

    `root` holds the state (ports, pids), logs and throw-away credential files; it ignores
    itself in git. `env` is the environment the components start with (credentials are read
    from it). Ports: fixed defaults for `make stack`, any free ones for tests."""

    def __init__(self, root: Path, ports: dict[str, int] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.root = root.resolve()
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.env = dict(os.environ if env is None else env)
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgdata: Path | None = None
        self.destination = f"s3://{BUCKET}/artifacts"  # MLflow's artefact root in the bucket

    # where things are
    @property
    def tracking_uri(self) -> str:
        return f"http://{HOST}:{self.ports['mlflow']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    @property
    def backend_uri(self) -> str:
        return f"postgresql+psycopg2://{USER}@{HOST}:{self.ports['postgres']}/{DB}"

    def client_env(self) -> dict[str, str]:
        """What a process that reads the S3 endpoint directly (DVC, boto3) needs."""
        out = {"MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
               "AWS_DEFAULT_REGION": self.env.get("AWS_DEFAULT_REGION", "us-east-1")}
        if self.env.get("AWS_ACCESS_KEY_ID"):
            out |= {k: self.env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                    if k in self.env}
        else:
            out["AWS_SHARED_CREDENTIALS_FILE"] = str(self.root / "aws-credentials")
        return out

    def server_env(self) -> dict[str, str]:
        env = {**self.env, **self.client_env()}
        if not env.get("PGPASSWORD"):
            env["PGPASSFILE"] = str(self.root / "pgpass")
        return env

    # lifecycle
    def up(self, timeout: float = 120) -> Stack:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".gitignore").write_text("*\n")  # logs and credential files, never git
        try:
            self._credentials()
            self._postgres()
            self._s3()
            env = self.server_env()
            check_postgres(self.backend_uri, env)
            check_bucket(self.destination, self.s3_endpoint, env | self._aws_env())
            self._mlflow(timeout)
        except BaseException:
            self.down()
            raise
        self._save()
        return self

    def _secret_file(self, name: str, text: str) -> Path:
        path = self.root / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def _credentials(self) -> None:
        password = self.env.get("PGPASSWORD") or secrets.token_urlsafe(24)
        self._password = password
        self._secret_file("pgpass", f"{HOST}:{self.ports['postgres']}:*:{USER}:{password}\n")
        if not self.env.get("AWS_ACCESS_KEY_ID"):  # moto accepts any; still never shared
            self._secret_file("aws-credentials", "[default]\n"
                              f"aws_access_key_id = local{secrets.token_hex(8)}\n"
                              f"aws_secret_access_key = {secrets.token_urlsafe(30)}\n")

    def _as_postgres_user(self) -> dict:
        """initdb and postgres refuse to run as root: run them as Debian's `postgres` user."""
        if os.geteuid() != 0:
            return {}
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise StackError("PostgreSQL: running as root and there is no 'postgres' user "
                             "(install Debian's 'postgresql' package)") from None
        return {"user": pw.pw_uid, "group": pw.pw_gid}

    def _postgres(self) -> None:
        demote = self._as_postgres_user()
        # The cluster lives in its own temp dir (a root-owned test dir may not be traversable
        # by the postgres user); its path is in the state file so `down` finds it.
        self.pgdata = Path(tempfile.mkdtemp(prefix="govpipe-pg-"))
        if demote:
            os.chown(self.pgdata, demote["user"], demote["group"])
        pwfile = self.pgdata / "pw"
        pwfile.write_text(self._password + "\n")
        os.chmod(pwfile, 0o600)
        if demote:
            os.chown(pwfile, demote["user"], demote["group"])
        data = self.pgdata / "data"
        env = {"PATH": self.env.get("PATH", ""), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        proc = subprocess.run(
            [_pg_bin("initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
             "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"],
            env=env, capture_output=True, text=True, cwd=self.pgdata, **demote)
        pwfile.unlink()
        if proc.returncode != 0:
            raise StackError(f"PostgreSQL: initdb failed: {proc.stderr.strip()[-500:]}")
        opts = (f"-c listen_addresses={HOST} -p {self.ports['postgres']} "
                f"-c unix_socket_directories='' -c fsync=off")
        proc = subprocess.run(
            [_pg_bin("pg_ctl"), "-D", str(data), "-l", str(self.pgdata / "postgres.log"),
             "-o", opts, "-w", "-t", "60", "start"],
            env=env, capture_output=True, text=True, cwd=self.pgdata, **demote)
        if proc.returncode != 0:
            raise StackError(f"PostgreSQL did not start on {HOST}:{self.ports['postgres']}: "
                             f"{_tail(self.pgdata / 'postgres.log', 5)}")
        import psycopg2

        con = psycopg2.connect(host=HOST, port=self.ports["postgres"], user=USER,
                               dbname="postgres", password=self._password, connect_timeout=5)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB}")
        con.close()

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def _s3(self) -> None:
        moto = str(Path(sys.executable).with_name("moto_server"))
        if not Path(moto).exists():
            raise StackError("S3 endpoint: moto_server is not installed (uv sync --extra stack)")
        proc = self._spawn("s3", [moto, "-H", HOST, "-p", str(self.ports["s3"])], self.env)
        wait_http(f"{self.s3_endpoint}/moto-api/", "S3 endpoint (moto)", 60, proc,
                  self.root / "s3.log")
        s3_client(self.s3_endpoint, self.server_env() | self._aws_env()).create_bucket(
            Bucket=BUCKET)

    def _aws_env(self) -> dict[str, str]:
        """The throw-away keys as variables, for this process's own boto3 calls."""
        if self.env.get("AWS_ACCESS_KEY_ID"):
            return {}

        cp = configparser.ConfigParser()
        cp.read(self.root / "aws-credentials")
        return {"AWS_ACCESS_KEY_ID": cp["default"]["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": cp["default"]["aws_secret_access_key"]}

    def start_mlflow(self, timeout: float = 120) -> None:
        """(Re)start the tracking server alone: the tests stop it mid-run."""
        self._mlflow(timeout)

    def _mlflow(self, timeout: float) -> None:
        proc = self._spawn("mlflow", mlflow_command(self.ports["mlflow"], self.backend_uri,
                                                    self.destination), self.server_env())
        wait_http(f"{self.tracking_uri}/health", "mlflow server", timeout, proc,
                  self.root / "mlflow.log")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            _stop_group(proc.pid, proc, grace=STOP_GRACE)

    def restart_postgres(self) -> None:
        """`pg_ctl restart`: what a managed database's maintenance window does."""
        assert self.pgdata is not None
        # -l: the restarted postmaster must not inherit our pipes (run() would wait for it)
        subprocess.run([_pg_bin("pg_ctl"), "-D", str(self.pgdata / "data"), "-m", "fast",
                        "-l", str(self.pgdata / "postgres.log"), "-w", "-t", "60", "restart"],
                       env={"PATH": self.env.get("PATH", "")}, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       cwd=self.pgdata, timeout=90, **self._as_postgres_user())

    def down(self) -> None:
        for name in ("mlflow", "s3"):
            self.stop(name)
        if self.pgdata is not None and (self.pgdata / "data").exists():
            subprocess.run([_pg_bin("pg_ctl"), "-D", str(self.pgdata / "data"), "-m", "fast",
                            "-w", "stop"], env={"PATH": self.env.get("PATH", "")},
                           capture_output=True, cwd=self.pgdata, **self._as_postgres_user())
        if self.pgdata is not None:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            self.pgdata = None
        for name in ("state.json", "pgpass", "aws-credentials"):  # no password outlives it
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()

    # `make stack` / `make stack-down` run in different processes: the state file links them
    def _save(self) -> None:
        state = {"ports": self.ports, "pgdata": str(self.pgdata),
                 "pids": {n: p.pid for n, p in self.procs.items()}}
        (self.root / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, root: Path) -> Stack | None:
        try:
            state = json.loads((root / "state.json").read_text())
        except FileNotFoundError:
            return None
        stack = cls(root, state["ports"])
        stack.pgdata = Path(state["pgdata"])
        stack._pids = state["pids"]
        return stack

    def down_from_state(self) -> None:
        for pid in getattr(self, "_pids", {}).values():
            _stop_group(pid, grace=STOP_GRACE)
        self.down()


def _stop_group(pid: int, proc: subprocess.Popen | None = None, grace: float = 20) -> None:
    """SIGTERM to the process group we started (its own session), then SIGKILL after `grace`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                break
        else:
            try:
                os.killpg(pid, 0)
            except (ProcessLookupError, PermissionError):
                break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


# -- command line ------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.tracking.stack")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status"):
        s = sub.add_parser(name)
        s.add_argument("--dir", type=Path, default=Path(".stack"))
    s = sub.add_parser("server", help="mlflow server against existing PostgreSQL and S3")
    s.add_argument("--backend-store-uri", required=True)
    s.add_argument("--artifacts-destination", required=True)
    s.add_argument("--host", default=HOST)
    s.add_argument("--port", type=int, default=DEFAULT_PORTS["mlflow"])
    s.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    try:
        return _run(args)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.cmd == "server":
        if re.search(r"//[^/@]+:[^/@]*@", args.backend_store_uri):
            raise StackError("--backend-store-uri holds a password: put it in PGPASSWORD or "
                             "PGPASSFILE, never on a command line (ps shows it)")
        env = dict(os.environ)
        check_postgres(args.backend_store_uri, env)
        if args.artifacts_destination.startswith("s3://"):
            check_bucket(args.artifacts_destination, env.get("MLFLOW_S3_ENDPOINT_URL"), env)
        cmd = mlflow_command(args.port, args.backend_store_uri, args.artifacts_destination,
                             args.host, args.workers)
        os.execv(cmd[0], cmd)  # the server itself, in this process (systemd/K8s supervise it)
    existing = Stack.load(args.dir)
    if args.cmd == "status":
        print("stack: " + ("up " + json.dumps(existing.ports) if existing else "down"))
        return 0
    if args.cmd == "down":
        if existing is None:
            print("stack: not running")
            return 0
        existing.down_from_state()
        print("stack: stopped")
        return 0
    if existing is not None:
        raise StackError(f"a stack is already up (state in {args.dir}/state.json); "
                         "make stack-down first")
    stack = Stack(args.dir).up()
    print(f"stack: up. tracking server {stack.tracking_uri} (backend "
          f"{stack.backend_uri}, artefacts {stack.destination} at {stack.s3_endpoint}); "
          f"logs in {args.dir}/. Register with `dvc exp run -S registry=server` "
          f"(registry.tracking_uri defaults to {stack.tracking_uri}).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
