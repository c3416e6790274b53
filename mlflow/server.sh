#!/usr/bin/env bash
# Start an MLflow tracking server for the pipeline, hardened by default.
#
#   mlflow/server.sh                 # sqlite store and local artifacts under mlflow/server/
#
# Everything is set through the environment (never through params.yaml, never hard-coded):
#   MLFLOW_HOST                      bind address (default 127.0.0.1: not reachable from outside);
#                                    any other than loopback needs MLFLOW_BASIC_AUTH=1, or
#   MLFLOW_ALLOW_UNAUTHENTICATED=1   to expose it without auth anyway (a proxy in front that
#                                    authenticates): the script warns and starts
#   MLFLOW_PORT                      default 5000
#   MLFLOW_BACKEND_STORE_URI         sqlite:///... (default) or postgresql+psycopg2://user@host:5432/db
#   MLFLOW_ARTIFACTS_DESTINATION     a folder (default) or s3://bucket/prefix; artifacts are proxied
#                                    by the server, so clients need no S3 credentials
#   MLFLOW_S3_ENDPOINT_URL           for S3-compatible stores (SeaweedFS, MinIO), read by the server
#   MLFLOW_ALLOWED_HOSTS             Host headers accepted (DNS-rebinding protection)
#   MLFLOW_CORS_ALLOWED_ORIGINS      browser origins allowed to call the API
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION  default false (GenAI job runner, unused here)
#   MLFLOW_BASIC_AUTH=1              turn on MLflow's basic-auth app (users and permissions); the
#                                    first admin's password comes from MLFLOW_AUTH_ADMIN_PASSWORD
#                                    and the user store from mlflow/basic_auth.ini; it also needs
#                                    MLFLOW_FLASK_SERVER_SECRET_KEY (CSRF), the same on every server
#
# MLflow 3's security middleware (allowed hosts, CORS, X-Frame-Options) runs only under its
# default uvicorn server: --gunicorn-opts or --waitress-opts would switch it off, so this
# script never passes them.
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything the server creates (the sqlite stores, the basic-auth user store with its password
# hashes, local artifacts) is readable by this user only.
umask 077

HOST="${MLFLOW_HOST:-127.0.0.1}"
PORT="${MLFLOW_PORT:-5000}"
# Anyone who reaches an unauthenticated server can read, change and delete every run and
# model, and move @champion: without auth it may listen on loopback only.
if ! [[ "$HOST" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ || "$HOST" == localhost || "$HOST" == ::1 ]] &&
  [[ "${MLFLOW_BASIC_AUTH:-0}" != 1 ]]; then
  if [[ "${MLFLOW_ALLOW_UNAUTHENTICATED:-0}" != 1 ]]; then
    echo "mlflow/server.sh: refusing to listen on $HOST (not loopback) without authentication: set MLFLOW_BASIC_AUTH=1, or MLFLOW_ALLOW_UNAUTHENTICATED=1 if a proxy in front authenticates" >&2
    exit 2
  fi
  echo "mlflow/server.sh: WARNING: listening on $HOST without authentication (MLFLOW_ALLOW_UNAUTHENTICATED=1): whoever reaches port $PORT can change every run and model" >&2
fi
mkdir -p mlflow/server
BACKEND="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$PWD/mlflow/server/mlflow.db}"
ARTIFACTS="${MLFLOW_ARTIFACTS_DESTINATION:-$PWD/mlflow/server/artifacts}"
ALLOWED_HOSTS="${MLFLOW_ALLOWED_HOSTS:-127.0.0.1:$PORT,localhost:$PORT}"
CORS="${MLFLOW_CORS_ALLOWED_ORIGINS:-http://127.0.0.1:$PORT,http://localhost:$PORT}"

# The job runner (three huey consumer processes) serves MLflow's GenAI jobs, which this
# pipeline does not use; on a small machine it only takes CPU from the stages.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

args=(
  server
  --host "$HOST"
  --port "$PORT"
  --workers "${MLFLOW_WORKERS:-1}"
  --backend-store-uri "$BACKEND"
  --serve-artifacts
  --artifacts-destination "$ARTIFACTS"
  --allowed-hosts "$ALLOWED_HOSTS"
  --cors-allowed-origins "$CORS"
)
auth="no auth"
if [[ "${MLFLOW_BASIC_AUTH:-0}" == 1 ]]; then
  if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
    echo "mlflow/server.sh: MLFLOW_BASIC_AUTH=1 needs MLFLOW_FLASK_SERVER_SECRET_KEY (CSRF key, same on every server)" >&2
    exit 2
  fi
  export MLFLOW_AUTH_CONFIG_PATH="${MLFLOW_AUTH_CONFIG_PATH:-$PWD/mlflow/basic_auth.ini}"
  args+=(--app-name basic-auth)
  auth="basic-auth"
fi
echo "mlflow server on http://$HOST:$PORT (backend ${BACKEND%%:*}, artifacts ${ARTIFACTS%%:*}, $auth)" >&2
exec mlflow "${args[@]}"
