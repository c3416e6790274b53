#!/usr/bin/env bash
# Entry point of the pipeline image (docker/pipeline.Dockerfile): configure DVC from the
# environment, then run the container's command (`airflow scheduler`, `dvc repro ...`).
#
#   DVC_REMOTE_URL   the DVC remote to push to and pull from, e.g. s3://dvc/store. It is written to
#                    .dvc/config.local in this container as the default remote named `storage`;
#                    dvc-s3 takes credentials and AWS_ENDPOINT_URL from the standard AWS variables.
#                    Unset: the repository's own default remote (.dvc/config) stays in place.
set -euo pipefail

if [[ -n "${DVC_REMOTE_URL:-}" ]]; then
  (cd "${RETRAIN_PROJECT_DIR:-/opt/retrain}" && dvc remote add --local --default --force storage "$DVC_REMOTE_URL" >/dev/null)
fi

exec "$@"
