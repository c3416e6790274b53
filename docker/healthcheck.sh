#!/usr/bin/env bash
# Health of the Airflow component in a container of the pipeline image:
#
#   docker/healthcheck.sh [api-server|scheduler|dag-processor|triggerer|celery-worker]
#
# docker/compose.yaml names the component; the image's HEALTHCHECK passes none, and the script
# then finds it among the container's processes. A container that runs no Airflow component
# (a one-off `dvc repro`, the init job) is healthy while it runs.
set -euo pipefail

component="${1:-}"
if [[ -z "$component" ]]; then
  for cmdline in /proc/[0-9]*/cmdline; do
    args="$(tr '\0' ' ' <"$cmdline" 2>/dev/null || true)"
    case "$args" in
      *"airflow api-server"*) component=api-server ;;
      *"airflow scheduler"*) component=scheduler ;;
      *"airflow dag-processor"*) component=dag-processor ;;
      *"airflow triggerer"*) component=triggerer ;;
      *"airflow celery worker"*) component=celery-worker ;;
    esac
    [[ -n "$component" ]] && break
  done
fi

http_ok() {
  python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$1"
}

case "$component" in
  api-server) http_ok "http://127.0.0.1:${AIRFLOW__API__PORT:-8080}/api/v2/monitor/health" ;;
  scheduler) http_ok "http://127.0.0.1:${AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT:-8974}/health" ;;
  dag-processor) exec airflow jobs check --job-type DagProcessorJob --local ;;
  triggerer) exec airflow jobs check --job-type TriggererJob --local ;;
  celery-worker)
    exec celery --app airflow.providers.celery.executors.celery_executor.app \
      inspect ping --destination "celery@${HOSTNAME}" ;;
  "") exit 0 ;;
  *)
    echo "healthcheck.sh: unknown component '$component'" >&2
    exit 2
    ;;
esac
