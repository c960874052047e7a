#!/bin/sh
# The image's HEALTHCHECK: one image, several roles, so the check follows ML_CONNECTOR_ROLE.
# Ports default to the image's fixed ones; compose and Kubernetes use those too.
set -eu
case "${ML_CONNECTOR_ROLE:-code-server}" in
  code-server)
    exec dagster api grpc-health-check -p "${DAGSTER_GRPC_PORT:-4000}" ;;
  webhooks)
    exec python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=5).status != 200)" \
      "http://127.0.0.1:${ML_CONNECTOR_WEBHOOKS_PORT:-8800}/webhooks/health" ;;
  webserver)
    exec python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=5).status != 200)" \
      "http://127.0.0.1:${DAGSTER_WEBSERVER_PORT:-3000}/server_info" ;;
  daemon)
    exec dagster-daemon liveness-check ;;
  run)
    # A run container (DockerRunLauncher) lives as long as its run; Dagster's run monitoring watches it.
    exit 0 ;;
  *)
    echo "unknown ML_CONNECTOR_ROLE ${ML_CONNECTOR_ROLE}" >&2
    exit 2 ;;
esac
