"""The commands that start each service, in one place for the native tests and the docker/ stack.

``tests/integration`` starts these processes itself; ``docker/compose.yaml`` runs the same
commands in containers, and ``tests/docker/test_docker_stack.py`` checks that it does. A test
that starts Airflow natively (scheduler, Celery worker, ...) takes its commands from here too.
"""

from __future__ import annotations

# The MLflow tracking server: the script users run, relative to the repository root.
MLFLOW_SERVER = ("bash", "mlflow/server.sh")

# The model server: the champion as a REST endpoint, in the environment it runs in (no new
# virtualenv per model). Followed by -m models:/<name>@champion, --host and --port.
MODEL_SERVE = ("mlflow", "models", "serve", "--env-manager", "local")
# Its readiness probe: 200 once the model has loaded.
MODEL_SERVE_PING = "/ping"

# Airflow 3's long-running components, by the name docker/healthcheck.sh knows them by.
AIRFLOW_COMPONENTS = {
    "api-server": ("airflow", "api-server"),
    "scheduler": ("airflow", "scheduler"),
    "dag-processor": ("airflow", "dag-processor"),
    "triggerer": ("airflow", "triggerer"),
    "celery-worker": ("airflow", "celery", "worker"),
}

# Creates or upgrades the metadata database before any component starts.
AIRFLOW_DB_MIGRATE = ("airflow", "db", "migrate")

# SeaweedFS with its S3 gateway: `weed server ... -s3 ...`.
SEAWEEDFS_SERVER = ("weed", "server")
SEAWEEDFS_S3_FLAG = "-s3"
