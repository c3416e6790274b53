"""Trust fixes around MLflow (issue 16): secrets in messages, auth errors, stale error tags,
a failing end_run, a read-only or world-readable sqlite store. No server here: MLflow's own
exceptions are built the way its REST client builds them (tests/integration/
test_mlflow_trust.py repeats the server-dependent ones against a real ``mlflow server``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines import reaper, register, registry, stage, tracking
from pipelines.errors import PipelineError, brief, redact, redact_handlers

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:secret@host/", "http://user:***@host/"),
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("postgresql+psycopg2://u:p@h:5432/db", "postgresql+psycopg2://u:***@h:5432/db"),
        ("https://u:p@ss@h:443/x", "https://u:***@h:443/x"),
        (
            "postgresql://h/db?sslmode=require&password=p",
            "postgresql://h/db?sslmode=require&password=***",
        ),
        (
            "API request to http://admin:pw@127.0.0.1:5000/api/2.0/x failed",
            "API request to http://admin:***@127.0.0.1:5000/api/2.0/x failed",
        ),
        ("http://127.0.0.1:5000/api/2.0/x", "http://127.0.0.1:5000/api/2.0/x"),
        ("sqlite:///mlflow/mlflow.db", "sqlite:///mlflow/mlflow.db"),
        (
            "http://host:5000 mailed to user@example.com",
            "http://host:5000 mailed to user@example.com",
        ),
    ],
)
def test_redact_masks_the_password_of_every_uri_and_nothing_else(text, shown):
    assert redact(text) == shown


def test_display_uri_and_brief_never_show_the_password(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:secret@host:5000/")
    assert tracking.display_uri() == "http://user:***@host:5000/"
    error = RuntimeError("API request to http://user:secret@host:5000/api failed")
    assert "secret" not in brief(error) and "user:***@host" in brief(error)


def test_stage_error_line_and_logs_are_redacted(capsys, monkeypatch):
    monkeypatch.setattr(stage.signal, "signal", lambda *args: None)  # keep pytest's SIGTERM

    def main():
        raise PipelineError("MLflow at postgresql://u:hunter2@db/mlflow is down")

    with pytest.raises(SystemExit) as exited:
        stage.run_stage("register", main, record_failure=False)
    assert exited.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ERROR [register] MLflow at postgresql://u:***@db/mlflow is down"
    )

    stream = io.StringIO()
    logger = logging.getLogger("test_tracking.redaction")
    logger.addHandler(logging.StreamHandler(stream))
    logger.propagate = False
    redact_handlers(logger)
    redact_handlers(logger)  # idempotent
    try:
        raise ConnectionError("API request to http://a:hunter2@h/api failed")
    except ConnectionError:
        logger.exception("contacting %s", "http://a:hunter2@h/")
    assert "hunter2" not in stream.getvalue() and stream.getvalue().count("a:***@h") == 3
    assert len(logger.handlers[0].filters) == 1


def _rest_error(status: int, body: str):
    """The exception MLflow's REST client raises for an HTTP answer (mlflow.utils.rest_utils)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import verify_rest_response

    response = SimpleNamespace(status_code=status, text=body)
    with pytest.raises(MlflowException) as raised:
        verify_rest_response(response, "/api/2.0/mlflow/registered-models/get")
    return raised.value


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, "You are not authenticated.", "refused the credentials (HTTP 401"),
        (403, "Permission denied", "denied permission (HTTP 403) to user 'alice'"),
        (403, json.dumps({"error_code": "PERMISSION_DENIED", "message": "no"}), "HTTP 403"),
        (500, "boom", "unreachable or failing while reading"),
        (
            400,
            json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid name"}),
            "refused a value while reading the model: INVALID_PARAMETER_VALUE: Invalid name",
        ),
    ],
)
def test_auth_failures_are_reported_as_such_naming_the_server(monkeypatch, status, body, expected):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:pw@mlflow.internal/")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    error = tracking.mlflow_error(_rest_error(status, body), "reading the model")
    assert expected in str(error)
    assert "http://alice:***@mlflow.internal/" in str(error) and ":pw@" not in str(error)


class FakeClient:
    """The few MlflowClient calls the registry CLI and the run bookkeeping make."""

    def __init__(self, tags: dict[str, str] | None = None, error: Exception | None = None):
        self.tags, self.error = dict(tags or {}), error
        self.status = "RUNNING"

    def get_registered_model(self, name):
        raise self.error

    def get_run(self, run_id):
        return SimpleNamespace(data=SimpleNamespace(tags=dict(self.tags)))

    def delete_tag(self, run_id, key):
        del self.tags[key]

    def set_terminated(self, run_id, status="FINISHED"):
        self.status = status


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (lambda: _rest_error(401, "You are not authenticated."), "HTTP 401, authentication"),
        (
            lambda: _rest_error(404, json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST"})),
            "registered model 'tabular-classifier' not found at http://u:***@h/",
        ),
    ],
)
def test_registry_cli_tells_a_refused_login_from_a_missing_model(monkeypatch, error, expected):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://u:pw@h/")
    monkeypatch.setattr(tracking, "client", lambda: FakeClient(error=error()))
    with pytest.raises(PipelineError) as raised:
        registry.main(["history", "--model-name", "tabular-classifier"])
    assert expected in str(raised.value)
    assert ("not found" in str(raised.value)) == ("not found" in expected)


def test_a_finished_run_loses_the_error_tags_of_earlier_failed_attempts(monkeypatch, tmp_path):
    monkeypatch.setattr(tracking, "LINEAGE_POINTER", tmp_path / "lineage.json")
    tags = {
        "stage.validate": "failed",
        "stage.validate.error": "column amount is missing",
        "stage.train": "killed",
        "stage.train.error": "interrupted",
        "stage.register": "done",
        "pipeline.killed": "process 12 disappeared",
    }
    failed = FakeClient(tags)
    tracking.close_lineage_run(failed, "run", "FAILED")
    assert failed.tags == tags, "a failed run keeps its error"
    finished = FakeClient(tags)
    tracking.close_lineage_run(finished, "run", "FINISHED")
    assert finished.status == "FINISHED"
    assert finished.tags == {
        "stage.register": "done",
        "pipeline.killed": "process 12 disappeared",
    }


def test_end_run_failing_while_the_server_is_down_is_one_warning(monkeypatch, caplog):
    from mlflow.exceptions import MlflowException

    import mlflow

    def unreachable(status="FINISHED"):
        raise MlflowException("API request to http://u:pw@h/api failed: Connection refused")

    monkeypatch.setattr(mlflow, "end_run", unreachable)
    with caplog.at_level(logging.WARNING, logger="pipelines.tracking"):
        tracking.end_active_run("FAILED")
    assert [r.getMessage() for r in caplog.records] == [
        "could not mark the MLflow run FAILED: API request to http://u:***@h/api failed: "
        "Connection refused"
    ]


def test_register_keeps_its_own_error_when_end_run_fails(monkeypatch, tmp_path):
    from mlflow.exceptions import MlflowException

    import mlflow

    def unreachable(status="FINISHED"):
        raise MlflowException("Connection refused")

    def stage_error(*args):
        raise PipelineError("the stage's own one-line message")

    monkeypatch.setattr(tracking, "client", lambda: FakeClient())
    monkeypatch.setattr(tracking, "experiment_id", lambda client, name: "1")
    monkeypatch.setattr(tracking, "open_lineage_run", lambda client, exp, run_name: "run")
    monkeypatch.setattr(mlflow, "start_run", lambda run_id: None)
    monkeypatch.setattr(mlflow, "end_run", unreachable)
    monkeypatch.setattr(register, "_register_in_run", stage_error)
    monkeypatch.setattr(register, "read_inputs", lambda params: None)
    monkeypatch.setattr(register, "held", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(register.reconcile, "settle", lambda *args: None)
    monkeypatch.setattr(register.paths, "REGISTER_REPORT", tmp_path / "register.json")
    monkeypatch.setattr(register.paths, "REGISTER_METRICS", tmp_path / "metrics.json")
    params = SimpleNamespace(
        register_=SimpleNamespace(
            experiment_name="e", model_name="m", lock_wait_s=1.0, lock_stale_s=10.0
        )
    )
    with pytest.raises(PipelineError, match="the stage's own one-line message"):
        register.register(params)


def test_a_new_sqlite_store_is_private_and_an_existing_one_kept(tmp_path):
    database = tmp_path / "mlflow.db"
    tracking.prepare_sqlite_store(database)
    assert database.stat().st_mode & 0o777 == 0o600 and database.stat().st_size == 0
    database.write_bytes(b"existing")
    tracking.prepare_sqlite_store(database)
    assert database.read_bytes() == b"existing"


@pytest.mark.parametrize("read_only", ["mlflow.db", ".", "artifacts"])
def test_a_read_only_store_is_one_line_naming_the_path(monkeypatch, tmp_path, read_only):
    database = tmp_path / "mlflow.db"
    database.touch()
    (tmp_path / "artifacts").mkdir()
    denied = (tmp_path / read_only).resolve()
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: access(p, mode) and Path(p).resolve() != denied
    )
    with pytest.raises(PipelineError) as raised:
        tracking.prepare_sqlite_store(database)
    assert str(raised.value).startswith(f"{tmp_path / read_only if read_only != '.' else tmp_path}")
    assert "cannot write (read-only)" in str(raised.value)


def _without_write_permission() -> list[str]:
    """A command prefix under which file permissions apply: root ignores them unless its
    DAC-override capabilities are dropped."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_a_read_only_mlflow_folder_fails_in_one_line_exit_1(tmp_path):
    folder = tmp_path / "mlflow"
    folder.mkdir()
    (folder / "mlflow.db").touch()
    (folder / "mlflow.db").chmod(0o444)
    folder.chmod(0o555)
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    try:
        done = subprocess.run(
            [*_without_write_permission(), sys.executable, "-m", "pipelines.registry", "history"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"ERROR [registry] {folder / 'mlflow.db'}: cannot write (read-only); make it writable "
        "by this user, or point MLFLOW_TRACKING_URI at a tracking server"
    ]


def test_a_dead_process_run_and_its_pending_logged_model_are_reaped_failed(tmp_path):
    """A register SIGKILLed inside ``log_model`` leaves its run RUNNING and its LoggedModel
    PENDING; the next command's reaper ends both FAILED, on a real sqlite store."""
    import socket
    import subprocess
    import sys

    from mlflow import MlflowClient

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("reap", artifact_location=(tmp_path / "a").as_uri())
    tags = {reaper.HOST_TAG: socket.gethostname(), reaper.PID_TAG: dead.stdout.strip()}
    run_id = client.create_run(experiment, tags=tags).info.run_id
    pending = client.create_logged_model(experiment, source_run_id=run_id).model_id
    alive_run = client.create_run(experiment).info.run_id  # no host tag: not ours to reap
    alive_model = client.create_logged_model(experiment, source_run_id=alive_run).model_id

    reaper.reap_dead_runs(client, experiment)

    assert client.get_run(run_id).info.status == "FAILED"
    assert reaper.REAPED_TAG in client.get_run(run_id).data.tags
    assert str(client.get_logged_model(pending).status) == "FAILED"
    assert client.get_run(alive_run).info.status == "RUNNING"
    assert str(client.get_logged_model(alive_model).status) == "PENDING"


class LateToTheRace:
    """A client of a real sqlite store that, like the second of two first runs at once, finds
    the experiment missing on its first look, after the other run has created it."""

    def __init__(self, client):
        self.client, self.looked = client, False

    def get_experiment_by_name(self, name):
        if not self.looked:
            self.looked = True
            return None
        return self.client.get_experiment_by_name(name)

    def create_experiment(self, name, artifact_location=None):
        return self.client.create_experiment(name, artifact_location=artifact_location)


def test_two_first_runs_creating_the_experiment_at_once_share_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = tracking.client()
    first = tracking.experiment_id(client, "retraining")
    assert tracking.experiment_id(LateToTheRace(client), "retraining") == first


def test_a_create_refused_for_another_reason_is_still_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(PipelineError, match="opening experiment ''"):
        tracking.experiment_id(LateToTheRace(tracking.client()), "")
