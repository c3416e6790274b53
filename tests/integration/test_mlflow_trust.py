"""Issue 16's MLflow trust fixes against a real ``mlflow/server.sh`` with basic-auth on.

One server, no pipeline run: a refused login is reported as such with the password masked;
the server's sqlite stores (runs and users) are private; an error tag from a failed attempt is
cleared when the execution finishes; ending a run while the server is down is one warning.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.services import MlflowServer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "canary-admin-password-9c1e"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # server.sh creates mlflow/server/ next to itself: run a copy, not the source tree's.
    home = tmp_path_factory.mktemp("server-home")
    shutil.copytree(REPO / "mlflow", home / "mlflow", ignore=shutil.ignore_patterns("server"))
    workdir = tmp_path_factory.mktemp("mlflow-trust")
    config = workdir / "basic_auth.ini"
    config.write_text(
        (home / "mlflow" / "basic_auth.ini")
        .read_text()
        .replace("sqlite:///mlflow/server/basic_auth.db", f"sqlite:///{workdir / 'users.db'}")
    )
    server = MlflowServer(
        home,
        workdir,
        MLFLOW_BASIC_AUTH="1",
        MLFLOW_AUTH_ADMIN_PASSWORD=PASSWORD,
        MLFLOW_FLASK_SERVER_SECRET_KEY="a-test-csrf-key",
        MLFLOW_AUTH_CONFIG_PATH=str(config),
    )
    server.start()
    yield server
    server.stop()


def _registry(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.registry", *args],
        cwd=REPO,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_server_stores_are_readable_by_their_owner_only(server):
    for store in ("mlflow.db", "users.db"):
        assert (server.workdir / store).stat().st_mode & 0o777 == 0o600, store


def test_a_refused_login_is_an_authentication_failure_with_the_password_masked(server):
    host = server.url.removeprefix("http://")
    refused = _registry("history", MLFLOW_TRACKING_URI=f"http://admin:wrong-pw-3b7d@{host}")
    assert refused.returncode == 1
    error = refused.stderr.splitlines()[-1]
    assert "HTTP 401, authentication failed" in error and "not found" not in error
    assert f"MLflow at http://admin:***@{host}" in error
    assert "wrong-pw-3b7d" not in refused.stdout + refused.stderr

    # With the right credentials the same question is answered: the model does not exist.
    missing = _registry(
        "history",
        MLFLOW_TRACKING_URI=server.url,
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD=PASSWORD,
    )
    assert missing.returncode == 1
    assert "registered model 'tabular-classifier' not found" in missing.stderr.splitlines()[-1]


def test_the_pipeline_user_is_made_without_admin_rights_and_cannot_manage_users(server):
    """mlflow/ensure_user.py (compose's mlflow-users job) makes the user the workers and
    serving log in as; it can track and register, and cannot create users. Run twice: the
    second run only sets the password again."""
    import os

    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    import mlflow

    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    admin = base | {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
        "PIPELINE_MLFLOW_PASSWORD": "pipeline-password-51af",
    }
    for said in ("created MLflow user 'pipeline'", "exists: password set, not admin"):
        made = subprocess.run(
            [sys.executable, str(REPO / "mlflow" / "ensure_user.py"), "pipeline"],
            env=admin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        assert said in made.stderr
    os.environ["MLFLOW_TRACKING_USERNAME"] = "pipeline"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = "pipeline-password-51af"
    try:
        client = mlflow.MlflowClient(server.url)
        client.create_experiment("made-by-pipeline-user")
        client.create_registered_model("made-by-pipeline-user")
        with pytest.raises(MlflowException, match="(?i)permission|403"):
            get_app_client("basic-auth", tracking_uri=server.url).create_user(
                "mallory", "mallory-password-1"
            )
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


def test_a_finished_execution_clears_the_error_of_a_failed_attempt_and_a_failing_end_run_is_one_warning(
    server, monkeypatch, caplog
):
    import mlflow
    from pipelines import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("PIPELINE_RUN_ID", "issue16-error-tag")  # no lineage pointer written
    try:
        tracking.record_failure("validate", "column amount is missing", interrupted=False)
        client = tracking.client()
        experiment = tracking.experiment_id(client, "retraining")
        run_id = tracking.open_lineage_run(client, experiment, run_name="retrain")
        failed = client.get_run(run_id).data.tags
        assert failed["stage.validate.error"] == "column amount is missing"
        tracking.close_lineage_run(client, run_id, "FINISHED")
        finished = client.get_run(run_id)
        assert finished.info.status == "FINISHED"
        assert not {"stage.validate", "stage.validate.error"} & set(finished.data.tags)

        monkeypatch.setenv("PIPELINE_RUN_ID", "issue16-end-run")
        mlflow.start_run(run_id=tracking.open_lineage_run(client, experiment, "retrain"))
        server.stop()
        # Earlier tests in the same process may have set the root logger to INFO.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pipelines.tracking"):
            tracking.end_active_run("FAILED")
        assert mlflow.active_run() is None
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.name == "pipelines.tracking" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 1 and warnings[0].startswith("could not mark the MLflow run FAILED")
    finally:
        mlflow.set_tracking_uri(None)  # the last test: the server stays down
