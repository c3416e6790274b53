# syntax=docker/dockerfile:1
# The MLflow tracking server image: runs mlflow/server.sh, the script users run and
# tests/integration starts natively, configured only through its MLFLOW_* variables. Build from
# the repo root:
#
#   docker build -f docker/mlflow.Dockerfile -t retrain-mlflow .
#
# It installs the `mlflow-server` dependency group of pyproject.toml from uv.lock (mlflow[auth],
# psycopg2-binary, boto3 and what they need, at the lock's versions), so the server runs the
# same MLflow as the pipeline without TensorFlow or Airflow in the image.
FROM python:3.11.14-slim-trixie AS build

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
# uv as the Makefile pins it (UV_VERSION).
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --only-group mlflow-server --no-install-project \
    --python /usr/local/bin/python3.11


FROM python:3.11.14-slim-trixie

ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="retrain-mlflow" \
      org.opencontainers.image.description="MLflow tracking server of the retraining pipeline" \
      org.opencontainers.image.revision="${GIT_COMMIT}"

# In a container the server must listen on every interface (server.sh defaults to 127.0.0.1);
# compose sets the allowed hosts and CORS origins for its service name and published port.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_HOST=0.0.0.0 \
    MLFLOW_PORT=5000

RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /home/mlflow --create-home \
       --shell /usr/sbin/nologin mlflow

COPY --from=build /opt/venv /opt/venv

WORKDIR /opt/mlflow
# server.sh runs from the folder above its own (it cds there) and keeps its state in
# mlflow/server/: the sqlite stores of the defaults and the basic-auth user store.
COPY mlflow/server.sh mlflow/basic_auth.ini mlflow/
RUN mkdir -p mlflow/server && chown mlflow:mlflow mlflow/server

# Numeric, so that the runtime (and runAsNonRoot in Kubernetes) can tell it is not root.
USER 10001:10001

EXPOSE 5000
# /health is exempt from MLflow's allowed-hosts check, so 127.0.0.1 always gets an answer.
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MLFLOW_PORT', '5000'), timeout=5)"]

CMD ["bash", "mlflow/server.sh"]
