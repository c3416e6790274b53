# syntax=docker/dockerfile:1
# The pipeline + Airflow image: every Airflow component of docker/compose.yaml (api-server,
# scheduler, dag-processor, triggerer, celery worker, the init job) and the stages the DAG runs
# (`dvc repro --single-item <stage>`). Build from the repo root:
#
#   docker build -f docker/pipeline.Dockerfile -t retrain-pipeline .
#
# Base: python:3.11-slim, not apache/airflow. The official Airflow image installs Airflow under
# its own constraints file, and this project pins Airflow, TensorFlow, DVC, MLflow and Great
# Expectations together in uv.lock: on top of apache/airflow there would be two sets of pins for
# the same packages. Here uv.lock is the only source, installed with the same uv as the Makefile,
# so the image runs exactly what `make test` tested.
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
# --locked: fail instead of resolving if uv.lock is stale; no dev tools in the image.
RUN uv sync --locked --no-dev --no-install-project --python /usr/local/bin/python3.11


FROM python:3.11.14-slim-trixie

ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="retrain-pipeline" \
      org.opencontainers.image.description="Retraining pipeline stages and Airflow 3 components" \
      org.opencontainers.image.revision="${GIT_COMMIT}"

# PIPELINE_GIT_COMMIT: the commit that register tags model versions with, as there is no
# git checkout in the image.
ENV PATH=/opt/venv/bin:$PATH \
    PIPELINE_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RETRAIN_PROJECT_DIR=/opt/retrain \
    PYTHONPATH=/opt/retrain \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/retrain/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=false \
    GX_ANALYTICS_ENABLED=false

# A fixed non-root uid/gid, so that named volumes keep their owner across rebuilds.
RUN groupadd --system --gid 10001 retrain \
    && useradd --system --uid 10001 --gid retrain --home-dir /home/retrain --create-home \
       --shell /usr/sbin/nologin retrain

# The environment belongs to root: the runtime user can run it, not change it.
COPY --from=build /opt/venv /opt/venv

WORKDIR /opt/retrain
# The project files the stages and the DAG read. The checkout is owned by the runtime user
# because DVC writes next to dvc.yaml (dvc.lock, .dvc/tmp) and the stages write under data/.
COPY --chown=retrain:retrain pyproject.toml uv.lock dvc.yaml params.yaml .dvcignore ./
COPY --chown=retrain:retrain .dvc/config .dvc/config
COPY --chown=retrain:retrain pipelines/ pipelines/
COPY --chown=retrain:retrain dags/ dags/
COPY --chown=retrain:retrain data/README.md data/README.md
COPY --chown=retrain:retrain data/schemas/ data/schemas/
COPY --chown=retrain:retrain mlflow/ mlflow/
COPY --chown=retrain:retrain docker/entrypoint.sh docker/healthcheck.sh docker/init.sh docker/

# Mount points of the compose volumes exist here with the right owner, so that Docker seeds a
# new named volume with this owner. None covers data/schemas: each image brings its own.
RUN mkdir -p /opt/airflow/logs /opt/airflow/auth /opt/retrain/.dvc/cache \
       /opt/retrain/data/landing /opt/retrain/data/reference \
    && chown -R retrain:retrain /opt/airflow /opt/retrain/.dvc /opt/retrain/data

# Numeric, so that the runtime (and runAsNonRoot in Kubernetes) can tell it is not root.
USER 10001:10001

# The image has no git checkout (.dockerignore drops .git): DVC runs without an SCM.
RUN dvc config --local core.no_scm true

EXPOSE 8000 8080 8793 8974
# One image, several components: the script finds which Airflow component this container runs
# (compose also names it explicitly); a one-off stage container is healthy while it runs.
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=5 \
    CMD ["/opt/retrain/docker/healthcheck.sh"]

ENTRYPOINT ["/opt/retrain/docker/entrypoint.sh"]
CMD ["airflow", "version"]
