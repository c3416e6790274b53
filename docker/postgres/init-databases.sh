#!/usr/bin/env bash
# PostgreSQL's first start (docker-entrypoint-initdb.d, an empty data volume only): one database
# and one owning role each for the Airflow metadata DB and the MLflow backend store. The SQL runs
# through psql variables so that the passwords come from the container's environment
# (docker/.env) and never from this file.
set -euo pipefail

for name in POSTGRES_PASSWORD AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD; do
  if [[ "${!name}" == *change-me* ]]; then
    echo "init-databases.sh: replace change-me in docker/.env ($name)" >&2
    exit 1
  fi
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
