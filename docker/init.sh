#!/usr/bin/env bash
# The init job of docker/compose.yaml (pipeline image), run once before the services start:
#   1. refuse placeholder secrets left from docker/.env.example, and a malformed Fernet key;
#   2. `airflow db migrate` on the Airflow metadata database;
#   3. the Airflow admin's password for the api-server, from AIRFLOW_ADMIN_PASSWORD;
#   4. the buckets of MLFLOW_ARTIFACTS_DESTINATION and DVC_REMOTE_URL, when missing.
# Every step is idempotent: `docker compose up` runs it again on each start.
set -euo pipefail

# Any variable still holding docker/.env.example's placeholder (connection strings included).
placeholders="$(env | awk -F= '/change-me/ {print $1}' | sort | tr '\n' ' ')"
if [[ -n "$placeholders" ]]; then
  echo "init: replace change-me in docker/.env (seen in: ${placeholders% })" >&2
  exit 1
fi
python -c 'import os, sys
from cryptography.fernet import Fernet
try:
    Fernet(os.environ["AIRFLOW__CORE__FERNET_KEY"])
except ValueError:
    sys.exit("init: AIRFLOW_FERNET_KEY is not a Fernet key; see docker/.env.example")'

echo "init: airflow db migrate" >&2
airflow db migrate

# SimpleAuthManager reads the users' passwords from this file and generates (and logs) one for
# any user missing from it; writing it here keeps the password out of the logs.
passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
umask 077
python - "$passwords_file" <<'PY'
import json, os, sys
with open(sys.argv[1], "w") as stream:
    json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, stream)
PY

python - <<'PY'
import os
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ClientError

s3 = boto3.client("s3")  # AWS_* variables, AWS_ENDPOINT_URL included
region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
for variable in ("MLFLOW_ARTIFACTS_DESTINATION", "DVC_REMOTE_URL"):
    url = urlsplit(os.environ.get(variable, ""))
    if url.scheme != "s3":
        continue
    try:
        s3.head_bucket(Bucket=url.netloc)
        print(f"init: bucket {url.netloc} ({variable}) exists")
    except ClientError:
        s3.create_bucket(Bucket=url.netloc, **location)
        print(f"init: bucket {url.netloc} ({variable}) created")
PY
echo "init: done" >&2
