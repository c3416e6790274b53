"""Real services started and stopped by the tests themselves, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.integration.commands import (
    AIRFLOW_COMPONENTS,
    AIRFLOW_DB_MIGRATE,
    MLFLOW_SERVER,
    MODEL_SERVE,
    MODEL_SERVE_PING,
    SEAWEEDFS_S3_FLAG,
    SEAWEEDFS_SERVER,
)

WEED = Path(sys.executable).parent / "weed"
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-access-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port_pair() -> int:
    """A port p with p and p + 10000 free (SeaweedFS puts each gRPC port at +10000)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 55000 and _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def seaweedfs(workdir: Path) -> Iterator[str]:
    """A SeaweedFS server with its S3 gateway; yields the S3 endpoint URL."""
    ports = {name: free_port_pair() for name in ("master", "volume", "filer", "s3")}
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "weed.log").open("w")
    process = subprocess.Popen(
        [
            str(WEED),
            *SEAWEEDFS_SERVER[1:],
            f"-dir={workdir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            SEAWEEDFS_S3_FLAG,
            f"-s3.port={ports['s3']}",
            # Off: they listen on fixed ports (8181, 9101), so two servers at once (the
            # suite's two workers) would collide, and no test uses them.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=100",
            "-master.volumeSizeLimitMB=64",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        _wait_for_s3(endpoint, process, workdir / "weed.log")
        yield endpoint
    finally:
        # Its graceful shutdown can take 20 s; the test is done with the data by now.
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def _wait_for_s3(endpoint: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    client = s3_client(endpoint)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            client.create_bucket(Bucket="readiness-probe")
            client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    raise RuntimeError(
        f"SeaweedFS S3 at {endpoint} not ready after {timeout}s: {log.read_text()[-2000:]}"
    )


def s3_env(endpoint: str) -> dict[str, str]:
    """The variables a boto3 or dvc-s3 client needs to reach the test store."""
    return TEST_CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}


class MlflowServer:
    """``mlflow/server.sh`` (the script users run) as a real process on 127.0.0.1.

    ``stop()`` then ``start()`` restarts it on the same port, store and artifacts."""

    def __init__(self, repo: Path, workdir: Path, backend_uri: str | None = None, **env: str):
        workdir.mkdir(parents=True, exist_ok=True)
        self.repo, self.workdir = repo, workdir
        self.port = free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "MLFLOW_PORT": str(self.port),
            "MLFLOW_BACKEND_STORE_URI": backend_uri or f"sqlite:///{workdir / 'mlflow.db'}",
            "MLFLOW_ARTIFACTS_DESTINATION": str(workdir / "artifacts"),
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> str:
        import os

        environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
        self.log = self.workdir / "server.log"
        self.process = subprocess.Popen(
            [MLFLOW_SERVER[0], str(self.repo / MLFLOW_SERVER[1])],
            env=environment | self.env,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            if self.health() is not None:
                return self.url
            time.sleep(0.5)
        raise RuntimeError(f"mlflow server not up after {timeout}s: {self.log.read_text()[-3000:]}")

    def health(self) -> int | None:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def stop(self) -> None:
        import os
        import signal

        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        deadline = time.monotonic() + 10
        while self.health() is not None and time.monotonic() < deadline:
            time.sleep(0.2)


@contextlib.contextmanager
def model_server(
    cwd: Path, model_uri: str, env: dict[str, str], workdir: Path, timeout: float = 180
) -> Iterator[str]:
    """``python -m pipelines.serve`` (``MODEL_SERVE``: a verified copy under ``mlflow models
    serve``) on a free port, run in ``cwd``, its log in
    ``workdir``; yields its URL once it answers ``MODEL_SERVE_PING``, and stops it (its whole
    process group) on the way out."""
    import os
    import signal
    import urllib.request

    port = free_port_pair()
    log = (workdir / "model-server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / MODEL_SERVE[0]), *MODEL_SERVE[1:]]
        + ["--model-uri", model_uri, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"mlflow models serve exited: {Path(log.name).read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url + MODEL_SERVE_PING, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow models serve not up after {timeout}s")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


class AirflowCluster:
    """Airflow 3 with the CeleryExecutor as real processes: api-server, scheduler,
    dag-processor and one Celery worker, on a PostgreSQL database and a Redis database of
    their own (the machine's local servers), created and dropped by the test."""

    POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
    REDIS_DB = 11

    def __init__(self, workdir: Path, dags_folder: Path, **env: str):
        import uuid

        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.database = f"airflow_test_{uuid.uuid4().hex[:8]}"
        self.port = free_port_pair()
        self.env = {
            "AIRFLOW_HOME": str(workdir / "home"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{self.POSTGRES}/{self.database}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{self.REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:5432/{self.database}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            **env,
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def _environment(self) -> dict[str, str]:
        import os

        environment = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
        return environment | self.env

    def airflow(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: {(done.stdout + done.stderr)[-3000:]}")
        return done.stdout

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(f"dbname={self.database} user=postgres host=127.0.0.1") as db:
            with db.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()

    def start(self, timeout: float = 180) -> None:
        import psycopg2
        import redis

        redis.Redis(host="127.0.0.1", port=6379, db=self.REDIS_DB).flushdb()
        admin = psycopg2.connect("dbname=postgres user=postgres host=127.0.0.1")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.database}"')
        admin.close()
        self.airflow(*AIRFLOW_DB_MIGRATE[1:])
        for name in ("api-server", "scheduler", "dag-processor", "celery-worker"):
            log = (self.workdir / f"{name}.log").open("w")
            self.processes[name] = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), *AIRFLOW_COMPONENTS[name][1:]],
                env=self._environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.query("SELECT count(*) FROM dag WHERE NOT is_stale")[0][0]:
                return
            time.sleep(2)
        raise RuntimeError(f"no DAG parsed after {timeout}s:\n{self.logs()}")

    def trigger(self, dag_id: str, run_id: str) -> None:
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            (state,) = self.query(
                "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id
            )[0]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise RuntimeError(f"run {run_id} not finished after {timeout}s:\n{self.logs()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        rows = self.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s",
            dag_id,
            run_id,
        )
        return dict(rows)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({process.returncode}):\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )

    def stop(self) -> None:
        import os
        import signal

        import psycopg2

        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        admin = psycopg2.connect("dbname=postgres user=postgres host=127.0.0.1")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        admin.close()
