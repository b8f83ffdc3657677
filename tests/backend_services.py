"""The production backends, started for a test session: a throwaway PostgreSQL 15 cluster, an MLflow server and
an S3-compatible server (moto's `moto_server`).

Plain classes (no pytest) so benchmarks/backends.py starts the same services; the fixtures at the
bottom wrap them. Postgres runs as an unprivileged user (initdb refuses root): as root, the
system user `llmftpg` is created if missing and the server runs under `runuser`. Both listen on
loopback only, on free ports, with trust auth (nothing else can reach them), and are stopped
and deleted after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("LLMFT_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "llmftpg"  # the unprivileged system user the server runs as when tests run as root
PG_ROLE = "llmft"  # the cluster's superuser role the platform connects as


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_missing() -> str | None:
    """Why a Postgres cluster cannot be started here, or None."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).is_file():
            return f"PostgreSQL binaries not found: {PG_BIN / tool} (install postgresql-15 or set LLMFT_PG_BIN)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install 'psycopg[binary]')"
    return None


def _ensure_os_user() -> str | None:
    """As root, the unprivileged user to run Postgres as (created if missing); else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_OS_USER],
                       check=True, capture_output=True)
    return PG_OS_USER


class PostgresCluster:
    """initdb + pg_ctl in a temp dir on a free loopback port; `url(db)` after `create_database(db)`."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable  # False: fsync off (a throwaway test cluster); True: Postgres' defaults
        self.port = 0
        self.root: Path | None = None

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        done = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True)
        if done.returncode:
            log = (self.root / "server.log") if self.root else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}\n{tail}")
        return done

    def start(self) -> "PostgresCluster":
        self._user = _ensure_os_user()
        self.root = Path(tempfile.mkdtemp(prefix="llmft-pg-"))  # /tmp, not pytest's root-only tmp tree
        if self._user:
            shutil.chown(self.root, self._user, self._user)
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", PG_ROLE, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.port = free_port()
        opts = [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1", "-c max_connections=200"]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", " ".join(opts), "start")
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_ROLE, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://{PG_ROLE}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


class MlflowServer:
    """`mlflow server` on a free loopback port: Postgres backend store, artifacts proxied to a directory or a bucket.

    `--serve-artifacts --artifacts-destination DIR`: clients write artifacts through the
    server (mlflow-artifacts:/ URIs), never to DIR directly, as they would with object storage.
    """

    def __init__(self, backend_uri: str, artifacts: Path, s3: "S3Server | None" = None, bucket: str = "") -> None:
        self.backend_uri, self.artifacts = backend_uri, Path(artifacts)
        self.s3, self.bucket = s3, bucket  # with both: artifacts in s3://BUCKET/mlflow on that server
        self.proc: subprocess.Popen | None = None
        self.uri = ""

    def start(self, timeout: float = 120) -> "MlflowServer":
        port = free_port()
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.log = self.artifacts.parent / "mlflow-server.log"
        mlflow = Path(sys.executable).with_name("mlflow")
        destination = f"s3://{self.bucket}/mlflow" if self.s3 else str(self.artifacts)
        cmd = [str(mlflow), "server", "--backend-store-uri", self.backend_uri, "--serve-artifacts",
               "--artifacts-destination", destination, "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
        # no background job runner (its 7 huey consumers): tracking and the registry do not need it
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if self.s3:  # the server, not its clients, holds the object-store credentials
            env.update({"MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
                        "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1"})
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        import urllib.request

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy after {timeout}s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: uvicorn and its workers
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


S3_KEY, S3_SECRET = "llmft-test", "llmft-test-secret"  # moto accepts any; set so no SDK looks elsewhere


def s3_missing() -> str | None:
    """Why an S3-compatible server cannot be started here, or None."""
    if not Path(sys.executable).with_name("moto_server").is_file():
        return "moto_server not installed (pip install 'moto[server]')"
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 not installed (pip install boto3)"
    return None


class S3Server:
    """moto's standalone S3-compatible server (`moto_server`) on a free loopback port; `bucket(name)` makes one."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def start(self, timeout: float = 60) -> "S3Server":
        port = free_port()
        self.log = Path(tempfile.mkdtemp(prefix="llmft-s3-")) / "moto.log"
        cmd = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server not listening after {timeout}s")

    def client(self):  # noqa: ANN201
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, uri: str) -> dict[str, str]:
        """The platform's settings for storage at `uri` on this server (what an operator sets)."""
        return {"LLMFT_STORAGE": uri, "LLMFT_S3_ENDPOINT": self.endpoint, "LLMFT_S3_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if getattr(self, "log", None) is not None:
            shutil.rmtree(self.log.parent, ignore_errors=True)


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL 15 cluster for the session; skipped (with the reason) only where its binaries are absent.

    LLMFT_REQUIRE_BACKENDS=1 (set by .ci/run) turns that skip into a failure.
    """
    missing = postgres_missing()
    if missing and os.environ.get("LLMFT_REQUIRE_BACKENDS") == "1":  # CI: a skipped tier would hide a regression
        pytest.fail(f"LLMFT_REQUIRE_BACKENDS=1 but {missing}")
    if missing:
        pytest.skip(missing)
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


_DB_COUNT = [0]


@pytest.fixture
def pg_url(postgres, monkeypatch):
    """A fresh database for one test, named in LLMFT_DB_URL (so Store() and the job processes use it)."""
    _DB_COUNT[0] += 1
    url = postgres.create_database(f"llmft_t{_DB_COUNT[0]}_{os.getpid()}")
    monkeypatch.setenv("LLMFT_DB_URL", url)
    return url


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    """An MLflow tracking server on its own Postgres database, artifacts served through it."""
    backend = postgres.create_database("mlflow")
    server = MlflowServer(backend, tmp_path_factory.mktemp("mlflow-server") / "artifacts").start()
    yield server
    server.stop()


def _require(missing: str | None) -> None:
    if missing and os.environ.get("LLMFT_REQUIRE_BACKENDS") == "1":
        pytest.fail(f"LLMFT_REQUIRE_BACKENDS=1 but {missing}")
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server (moto) for the session, on loopback; LLMFT_REQUIRE_BACKENDS=1 turns a skip into a failure."""
    _require(s3_missing())
    server = S3Server().start()
    yield server
    server.stop()


_BUCKETS = [0]


@pytest.fixture
def s3_storage(s3_server, monkeypatch):
    """A fresh bucket for one test, set as the platform's storage (LLMFT_STORAGE=s3://BUCKET/llmft + endpoint, keys)."""
    _BUCKETS[0] += 1
    bucket = s3_server.bucket(f"llmft-t{_BUCKETS[0]}-{os.getpid()}")
    for key, value in s3_server.env(f"s3://{bucket}/llmft").items():
        monkeypatch.setenv(key, value)
    return {"bucket": bucket, "prefix": "llmft", "uri": f"s3://{bucket}/llmft", "server": s3_server}
