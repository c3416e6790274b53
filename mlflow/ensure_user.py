"""Create, or re-password, the non-admin MLflow user that the pipeline's workers and the
serving container log in as, so that no stage process holds the admin's password.

Run with the admin's credentials (compose's one-shot ``mlflow-users`` service does, once the
server is healthy)::

    MLFLOW_TRACKING_URI=http://mlflow:5000 MLFLOW_TRACKING_USERNAME=admin \\
    MLFLOW_TRACKING_PASSWORD=... PIPELINE_MLFLOW_PASSWORD=... python mlflow/ensure_user.py pipeline

The user is an ordinary one: it gets MANAGE on the experiments and registered models it
creates (the pipeline's run, audit and monitoring experiments, the model and its lock) and
the server's default permission on the rest; it cannot create users or change permissions.
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client


def ensure_user(tracking_uri: str, username: str, password: str) -> str:
    """Make ``username`` exist with ``password`` and no admin rights; says what it did."""
    client = get_app_client("basic-auth", tracking_uri=tracking_uri)
    try:
        client.get_user(username)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_user(username, password)
        return f"created MLflow user {username!r}"
    client.update_user_password(username, password)
    client.update_user_admin(username, False)
    return f"MLflow user {username!r} exists: password set, not admin"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python mlflow/ensure_user.py <username>")
    password = os.environ.get("PIPELINE_MLFLOW_PASSWORD", "")
    if len(password) < 12:
        sys.exit("mlflow/ensure_user.py: set PIPELINE_MLFLOW_PASSWORD (12 characters or more)")
    try:
        said = ensure_user(os.environ["MLFLOW_TRACKING_URI"], sys.argv[1], password)
    except MlflowException as exc:
        sys.exit(f"mlflow/ensure_user.py: {exc.message}")
    sys.stderr.write(said + "\n")


if __name__ == "__main__":
    main()
