# One image, five roles. The default command serves the code location over gRPC (port 4000); the
# other roles are the same image with another command, also listed in the `role.*` labels below:
#   docker run -p 4000:4000 IMAGE
#   docker run -p 3000:3000 -e ML_CONNECTOR_ROLE=webserver IMAGE dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml
#   docker run -e ML_CONNECTOR_ROLE=daemon IMAGE dagster-daemon run -w workspace.yaml
#   docker run -p 8800:8800 -e ML_CONNECTOR_ROLE=webhooks IMAGE ml-connector webhooks serve --host 0.0.0.0 --port 8800
# Runs themselves start in their own container (DockerRunLauncher, ML_CONNECTOR_ROLE=run) or pod.
# The webserver and daemon load workspace.yaml (the code is installed here too); deploy/ runs them
# against the code-server container instead (`--grpc-host <host> --grpc-port 4000` in place of `-w`).
# HEALTHCHECK runs deploy/healthcheck.sh, which checks the role named by ML_CONNECTOR_ROLE.
#
# Configuration comes from the environment at run time (docs/production.md, deploy/env.example):
#   DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_DB, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD
#   ML_CONNECTOR_DB_URL (the state store, Postgres in production), ML_CONNECTOR_MASTER_KEY (the vault)
# Dependencies are installed from requirements.lock only (exact versions and hashes); refresh it with
# `make lock`. ml_connector_pipelines_tests/platform/test_dockerfile.py checks this file.

# Build stage: a virtualenv with the locked dependencies, then the project itself without resolving.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
WORKDIR /opt/dagster/src
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
# A regular (non-editable) install: the package brings its data files (alembic migrations, PEM keys).
COPY pyproject.toml README.md ./
COPY ml_connector_pipelines ./ml_connector_pipelines
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation .

# Runtime stage: the virtualenv only, no build tree, running as an unprivileged user.
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:${PATH} \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    ML_CONNECTOR_HOME=/opt/dagster/ml-connector \
    ML_CONNECTOR_STORAGE=/opt/dagster/storage \
    ML_CONNECTOR_COMPUTE_LOGS=/opt/dagster/storage/compute_logs

# A fixed uid, so volume permissions are the same on every host; no login shell.
RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --shell /usr/sbin/nologin dagster

COPY --from=build /opt/venv /opt/venv
# The production instance (Postgres storage, queued runs, container runs, pools) and the code location.
COPY --chown=dagster:dagster dagster.yaml workspace.yaml ${DAGSTER_HOME}/
COPY deploy/healthcheck.sh /usr/local/bin/ml-connector-healthcheck
# Compute logs and the IO manager's files live in ML_CONNECTOR_STORAGE: mount a volume shared by
# every container there, so what a run wrote survives its container.
RUN mkdir -p "${ML_CONNECTOR_HOME}" "${ML_CONNECTOR_STORAGE}" \
    && chown -R dagster:dagster "${DAGSTER_HOME}" "${ML_CONNECTOR_HOME}" "${ML_CONNECTOR_STORAGE}"

USER dagster
WORKDIR ${DAGSTER_HOME}

LABEL org.opencontainers.image.title="ml-connector-pipelines" \
      org.opencontainers.image.description="Dagster code location syncing Infor CloudSuite with SaaS systems" \
      role.code-server="dagster code-server start -h 0.0.0.0 -p 4000 -m ml_connector_pipelines.definitions -a defs --location-name ml_connector_pipelines" \
      role.webserver="dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml" \
      role.daemon="dagster-daemon run -w workspace.yaml" \
      role.webhooks="ml-connector webhooks serve --host 0.0.0.0 --port 8800"

EXPOSE 4000 3000 8800

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["ml-connector-healthcheck"]

CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "ml_connector_pipelines.definitions", "-a", "defs", "--location-name", "ml_connector_pipelines"]
