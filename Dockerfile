# One image, four roles. The default command serves the code location over gRPC (port 4000); the
# other roles are the same image with another command, also listed in the `role.*` labels below:
#   docker run -p 4000:4000 IMAGE
#   docker run -p 3000:3000 IMAGE dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml
#   docker run IMAGE dagster-daemon run -w workspace.yaml
#   docker run -p 8800:8800 IMAGE ml-connector webhooks serve --host 0.0.0.0 --port 8800
# The webserver and daemon load workspace.yaml (the code is installed here too); to use a separate
# code-server container instead, pass `--grpc-host <host> --grpc-port 4000` in place of `-w`.
#
# Configuration comes from the environment at run time (README, "Configuration"):
#   DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_DB, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD
#   ML_CONNECTOR_DB_URL (the state store, Postgres in production), ML_CONNECTOR_MASTER_KEY (the vault)
# ml_connector_pipelines_tests/platform/test_dockerfile.py checks every file and command named here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    ML_CONNECTOR_HOME=/opt/dagster/ml-connector

# A fixed uid, so volume permissions are the same on every host; no login shell.
RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --shell /usr/sbin/nologin dagster

# A regular (non-editable) install: the package brings its data files (alembic migrations, PEM keys).
WORKDIR /opt/dagster/src
COPY pyproject.toml README.md ./
COPY ml_connector_pipelines ./ml_connector_pipelines
RUN pip install .

# The production instance (Postgres storage, queued runs, pools) and the code location to load.
COPY --chown=dagster:dagster dagster.yaml workspace.yaml ${DAGSTER_HOME}/
RUN mkdir -p "${ML_CONNECTOR_HOME}" && chown -R dagster:dagster "${DAGSTER_HOME}" "${ML_CONNECTOR_HOME}"

USER dagster
WORKDIR ${DAGSTER_HOME}

LABEL org.opencontainers.image.title="ml-connector-pipelines" \
      org.opencontainers.image.description="Dagster code location syncing Infor CloudSuite with SaaS systems" \
      role.code-server="dagster code-server start -h 0.0.0.0 -p 4000 -m ml_connector_pipelines.definitions -a defs --location-name ml_connector_pipelines" \
      role.webserver="dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml" \
      role.daemon="dagster-daemon run -w workspace.yaml" \
      role.webhooks="ml-connector webhooks serve --host 0.0.0.0 --port 8800"

EXPOSE 4000 3000 8800

CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "ml_connector_pipelines.definitions", "-a", "defs", "--location-name", "ml_connector_pipelines"]
