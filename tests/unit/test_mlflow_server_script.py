"""mlflow/server.sh refuses to expose a server without auth, and keeps what it creates private.

The script runs from a copy in a temporary folder (it creates mlflow/server/ next to itself),
with a stub ``mlflow`` on PATH that records how it was called instead of starting a server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUB = """#!/usr/bin/env bash
echo "umask=$(umask) $*" > "$(dirname "$0")/called"
"""


@pytest.fixture
def server_script(tmp_path: Path):
    """Run the copied script with ``env``; returns the run and the stub's record (or None)."""
    (tmp_path / "mlflow").mkdir()
    shutil.copy2(REPO / "mlflow" / "server.sh", tmp_path / "mlflow" / "server.sh")
    stub = tmp_path / "bin" / "mlflow"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    base["PATH"] = f"{stub.parent}{os.pathsep}{base['PATH']}"

    def run(**env: str):
        started = time.monotonic()
        done = subprocess.run(
            ["bash", str(tmp_path / "mlflow" / "server.sh")],
            env=base | env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        called = stub.parent / "called"
        record = called.read_text() if called.exists() else None
        called.unlink(missing_ok=True)
        return done, record, time.monotonic() - started

    return run


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "mlflow.example.com", "127.evil.io"])
def test_a_non_loopback_bind_without_auth_is_refused(server_script, host):
    done, record, seconds = server_script(MLFLOW_HOST=host)
    assert done.returncode == 2 and record is None and seconds < 10
    assert f"refusing to listen on {host} (not loopback) without authentication" in done.stderr
    assert "MLFLOW_BASIC_AUTH=1" in done.stderr and "MLFLOW_ALLOW_UNAUTHENTICATED=1" in done.stderr


@pytest.mark.parametrize(
    ("env", "warning"),
    [
        ({}, False),
        ({"MLFLOW_HOST": "127.0.0.2"}, False),
        ({"MLFLOW_HOST": "localhost"}, False),
        ({"MLFLOW_HOST": "::1"}, False),
        ({"MLFLOW_HOST": "0.0.0.0", "MLFLOW_ALLOW_UNAUTHENTICATED": "1"}, True),
        (
            {
                "MLFLOW_HOST": "0.0.0.0",
                "MLFLOW_BASIC_AUTH": "1",
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
            },
            False,
        ),
    ],
)
def test_loopback_auth_or_the_explicit_flag_start_the_server(server_script, env, warning):
    done, record, _ = server_script(**env)
    assert done.returncode == 0, done.stderr
    assert record is not None and record.startswith("umask=0077 server --host")
    assert ("WARNING: listening on 0.0.0.0 without authentication" in done.stderr) == warning
    assert ("--app-name basic-auth" in record) == (env.get("MLFLOW_BASIC_AUTH") == "1")
