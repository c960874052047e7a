"""deploy/: the compose file, the Helm values, the receiver's manifests and the instance variants.

Neither Docker nor a cluster runs here, so the files are parsed and checked against what they must
agree with: the Dockerfile's role commands and paths, the production dagster.yaml's limits, and the
keys of Dagster's chart (its pydantic models, `helm/dagster/schema` in the dagster repo, for the
chart of dagster 1.13). The instance variants are loaded for real on the local Postgres.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster_aws.s3 import S3ComputeLogManager
from dagster_docker import DockerRunLauncher
from dagster_k8s import K8sRunLauncher

from .conftest import CliEnv
from .test_dockerfile import REPO, Dockerfile, option, parse_dockerfile

DEPLOY = REPO / "deploy"
ROLES = {"code-server", "webserver", "daemon", "webhooks"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|MASTER_KEY|DB_URL|ACCESS_KEY")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    text = (REPO / "Dockerfile").read_text()
    return Dockerfile(parse_dockerfile(text), "")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(DEPLOY / "docker-compose.yaml")


@pytest.fixture(scope="module")
def helm() -> dict[str, Any]:
    return load(DEPLOY / "helm" / "values.yaml")


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    return load(REPO / "dagster.yaml")


def example_env() -> dict[str, str]:
    lines = (DEPLOY / "env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def served_from_code_server(command: list[str]) -> list[str]:
    """A role command of the image with `-w workspace.yaml` swapped for the code-server container."""
    i = command.index("-w")
    return [*command[:i], "--grpc-host", "code-server", "--grpc-port", "4000", *command[i + 2 :]]


# docker compose


def test_compose_runs_every_role_of_the_image_and_postgres(
    compose: dict[str, Any], dockerfile: Dockerfile
) -> None:
    services = compose["services"]
    assert set(services) == ROLES | {"postgres"}
    roles = dockerfile.role_commands()
    assert services["code-server"]["command"] == dockerfile.cmd
    assert services["webhooks"]["command"] == roles["webhooks"]
    for role in ("webserver", "daemon"):
        assert services[role]["command"] == served_from_code_server(roles[role])
    images = {services[role]["image"] for role in ROLES}
    assert len(images) == 1  # one image, every role
    assert services["code-server"]["environment"]["DAGSTER_CURRENT_IMAGE"] in images
    assert services["code-server"]["build"]["context"] == ".."


def test_compose_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    for role in ROLES:
        service = services[role]
        assert service["environment"]["ML_CONNECTOR_ROLE"] == role  # what the HEALTHCHECK script reads
        assert service["healthcheck"]["test"] == ["CMD", "ml-connector-healthcheck"]
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for role in ("webserver", "daemon"):
        assert services[role]["depends_on"]["code-server"] == {"condition": "service_healthy"}


def test_compose_shares_storage_and_network_with_the_run_containers(
    compose: dict[str, Any], production: dict[str, Any], dockerfile: Dockerfile
) -> None:
    launcher = production["run_launcher"]
    assert launcher["class"] == "DockerRunLauncher"
    assert compose["networks"]["default"]["name"] == launcher["config"]["network"]
    (run_volume,) = launcher["config"]["container_kwargs"]["volumes"]
    volume_name, mount = run_volume.split(":")
    assert mount == dockerfile.env["ML_CONNECTOR_STORAGE"]
    assert dockerfile.env["ML_CONNECTOR_COMPUTE_LOGS"].startswith(mount + "/")
    assert compose["volumes"]["storage"]["name"] == volume_name
    for role in ROLES:
        assert f"storage:{mount}" in compose["services"][role]["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in compose["services"]["daemon"]["volumes"]


def test_compose_has_no_secret_inline_and_the_example_env_names_them_all(
    compose: dict[str, Any], production: dict[str, Any]
) -> None:
    example = example_env()
    for name, service in compose["services"].items():
        assert service["env_file"] == ["ml-connector.env"], name
        for key in service.get("environment", {}):
            assert not SECRET_NAME.search(key), f"{name}: {key} belongs in ml-connector.env"
    assert {
        "POSTGRES_PASSWORD",
        "DAGSTER_PG_PASSWORD",
        "ML_CONNECTOR_DB_URL",
        "ML_CONNECTOR_MASTER_KEY",
    } <= set(example)
    # The example holds placeholders only, never a usable key.
    assert example["ML_CONNECTOR_MASTER_KEY"] == ""
    # Everything the run containers are handed exists in a service's environment or the env file.
    app_env = set(compose["services"]["daemon"]["environment"]) | set(example)
    for instance in (production, load(DEPLOY / "dagster.s3.yaml")):
        for variable in instance["run_launcher"]["config"]["env_vars"]:
            assert "=" in variable or variable in app_env, variable
    assert "deploy/ml-connector.env" in (REPO / ".gitignore").read_text().split()


# The instance variants, on the local Postgres


@pytest.fixture
def instance_env(cli: CliEnv, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> CliEnv:
    url = sa.make_url(postgres_url)
    for name, value in {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_PG_USERNAME": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "ML_CONNECTOR_STORAGE": str(cli.home.parent / "storage"),
        "ML_CONNECTOR_COMPUTE_LOGS": str(cli.home.parent / "storage" / "compute_logs"),
        "ML_CONNECTOR_S3_BUCKET": "ml-connector-logs",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    return cli


def test_the_production_instance_launches_runs_in_containers_and_keeps_files_on_the_volume(
    instance_env: CliEnv,
) -> None:
    shutil.copy(REPO / "dagster.yaml", instance_env.dagster_home / "dagster.yaml")
    storage = instance_env.home.parent / "storage"
    with dg.DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["ml-connector"]
        assert "ML_CONNECTOR_ROLE=run" in launcher.env_vars
        assert instance.storage_directory() == str(storage / "storage")  # where fs_io_manager writes
        logs = instance.compute_log_manager
        assert type(logs).__name__ == "LocalComputeLogManager"
        local = Path(logs.get_captured_local_path(["run", "step"], "out"))
        assert local.is_relative_to(storage / "compute_logs")


def test_the_s3_variant_differs_only_in_compute_logs(
    instance_env: CliEnv, production: dict[str, Any]
) -> None:
    variant = load(DEPLOY / "dagster.s3.yaml")
    production = copy.deepcopy(production)
    base_vars = production["run_launcher"]["config"].pop("env_vars")
    variant_vars = variant["run_launcher"]["config"].pop("env_vars")
    assert variant_vars[: len(base_vars)] == base_vars
    assert {k: v for k, v in variant.items() if k != "compute_logs"} == {
        k: v for k, v in production.items() if k != "compute_logs"
    }
    shutil.copy(DEPLOY / "dagster.s3.yaml", instance_env.dagster_home / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        logs = instance.compute_log_manager
        assert isinstance(logs, S3ComputeLogManager)
        assert logs.inst_data is not None
        assert logs.inst_data.config_dict["bucket"] == {"env": "ML_CONNECTOR_S3_BUCKET"}
        # Staged on the shared volume before upload.
        local = Path(logs.local_manager.get_captured_local_path(["run", "step"], "out"))
        assert local.is_relative_to(instance_env.home.parent / "storage" / "compute_logs")
        assert isinstance(instance.run_launcher, DockerRunLauncher)


# Helm values for the dagster/dagster chart

# The keys of the chart's values models this file sets (DagsterHelmValues and its subschemas).
CHART_KEYS = {
    "": {"global", "postgresql", "generatePostgresqlPasswordSecret", "dagsterWebserver",
         "dagster-user-deployments", "runLauncher", "computeLogManager", "dagsterDaemon",
         "additionalInstanceConfig", "telemetry"},
    "global": {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName",
               "dagsterInstanceConfigMap"},
    "postgresql": {"image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"},
    "dagsterWebserver": {"replicaCount", "image", "env", "envConfigMaps", "envSecrets", "service",
                         "readinessProbe", "resources", "podSecurityContext", "securityContext"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "deployment": {"name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs",
                   "includeConfigInLaunchedRuns", "env", "envConfigMaps", "envSecrets", "volumes",
                   "volumeMounts", "readinessProbe", "livenessProbe", "startupProbe", "resources",
                   "podSecurityContext", "securityContext", "labels", "annotations"},
    "k8sRunLauncher": {"image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig",
                       "kubeconfigFile", "envConfigMaps", "envSecrets", "envVars", "volumeMounts",
                       "volumes", "labels", "failPodOnRunFailure", "resources", "runK8sConfig"},
    "s3ComputeLogManager": {"bucket", "localDir", "prefix", "useSsl", "verify", "verifyCertPath",
                            "endpointUrl", "skipEmptyFiles", "uploadInterval", "uploadExtraArgs",
                            "showUrlOnly", "region"},
    "dagsterDaemon": {"enabled", "image", "runCoordinator", "env", "envConfigMaps", "envSecrets",
                      "runMonitoring", "runRetries", "resources", "podSecurityContext", "securityContext"},
    "queuedRunCoordinator": {"maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds",
                             "dequeueNumWorkers", "dequeueUseThreads"},
}  # fmt: skip


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_helm_values_use_only_keys_of_the_chart(helm: dict[str, Any]) -> None:
    sections = {
        "": helm,
        "global": helm["global"],
        "postgresql": helm["postgresql"],
        "dagsterWebserver": helm["dagsterWebserver"],
        "dagster-user-deployments": helm["dagster-user-deployments"],
        "k8sRunLauncher": helm["runLauncher"]["config"]["k8sRunLauncher"],
        "s3ComputeLogManager": helm["computeLogManager"]["config"]["s3ComputeLogManager"],
        "dagsterDaemon": helm["dagsterDaemon"],
        "queuedRunCoordinator": helm["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"],
    }
    for section, values in sections.items():
        assert set(values) <= CHART_KEYS[section], (
            f"{section or 'top level'}: {set(values) - CHART_KEYS[section]}"
        )
    for deployment in helm["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= CHART_KEYS["deployment"]
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert helm["computeLogManager"]["type"] == "S3ComputeLogManager"
    # What the chart passes on to Dagster's own classes is config those classes accept.
    k8s_keys = set(K8sRunLauncher.config_type())
    assert {snake(k) for k in sections["k8sRunLauncher"]} - {"env_secrets", "env_vars"} <= k8s_keys
    assert {snake(k) for k in sections["s3ComputeLogManager"]} <= set(S3ComputeLogManager.config_type())


def test_helm_runs_the_image_as_code_location_webserver_and_daemon(
    helm: dict[str, Any], dockerfile: Dockerfile
) -> None:
    image = helm["dagsterWebserver"]["image"]
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert deployment["image"] == helm["dagsterDaemon"]["image"] == image
    # The code server's arguments are the image's default command, minus host and port.
    cmd = dockerfile.cmd
    assert cmd[:3] == ["dagster", "code-server", "start"]
    args = cmd[3:]
    for flag in ("-h", "-p"):
        i = args.index(flag)
        args = args[:i] + args[i + 2 :]
    assert deployment["codeServerArgs"] == args
    assert deployment["port"] == int(option(cmd, "-p") or 0)
    probe = deployment["readinessProbe"]["exec"]["command"]
    assert probe == ["dagster", "api", "grpc-health-check", "-p", str(deployment["port"])]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    uid = int(re.search(r"--uid (\d+)", " ".join(dockerfile.all("RUN"))).group(1))  # type: ignore[union-attr]
    assert deployment["podSecurityContext"]["runAsUser"] == uid
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


def test_helm_secrets_come_from_kubernetes_secrets(helm: dict[str, Any]) -> None:
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    holders = [
        helm["dagsterWebserver"],
        helm["dagsterDaemon"],
        deployment,
        helm["runLauncher"]["config"]["k8sRunLauncher"],
    ]
    for holder in holders:
        assert holder["envSecrets"] == [{"name": "ml-connector-secrets"}]
        env = holder.get("env", {})
        names = set(env) if isinstance(env, dict) else {e["name"] for e in env}
        assert not any(SECRET_NAME.search(n) for n in names)
    assert helm["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in helm["postgresql"]
    assert helm["generatePostgresqlPasswordSecret"] is False
    assert helm["global"]["postgresqlSecretName"]
    assert not re.search(r"(?i)password:\s*\S", (DEPLOY / "helm" / "values.yaml").read_text())


def test_helm_instance_has_the_limits_of_the_production_instance(
    helm: dict[str, Any], production: dict[str, Any]
) -> None:
    coordinator = helm["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    runs = production["concurrency"]["runs"]
    assert queued["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    extra = helm["additionalInstanceConfig"]
    assert extra["concurrency"] == {"pools": production["concurrency"]["pools"]}
    # The IO manager's files on the claim that the code location and every run pod mount.
    base_dir = extra["local_artifact_storage"]["config"]["base_dir"]
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    launcher = helm["runLauncher"]["config"]["k8sRunLauncher"]
    for holder in (deployment, launcher):
        assert [m["mountPath"] for m in holder["volumeMounts"]] == [base_dir]
        assert holder["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ml-connector-storage"
    assert "ML_CONNECTOR_ROLE=run" in launcher["envVars"]


# The webhook receivers (deploy/k8s)


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("k8s_render", DEPLOY / "k8s" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manifests = module.render(load(DEPLOY / "k8s" / "values.yaml"))
    # The committed manifests are exactly what the values render to.
    committed = list(yaml.safe_load_all((DEPLOY / "k8s" / "manifests.yaml").read_text()))
    assert committed == manifests, (
        "deploy/k8s/manifests.yaml is stale: python deploy/k8s/render.py deploy/k8s/manifests.yaml"
    )
    return {m["kind"]: m for m in manifests}


def test_receivers_run_n_replicas_of_the_image_behind_one_service(
    rendered: dict[str, dict[str, Any]], helm: dict[str, Any], dockerfile: Dockerfile
) -> None:
    values = load(DEPLOY / "k8s" / "values.yaml")
    deployment = rendered["Deployment"]
    assert deployment["spec"]["replicas"] == values["receiver"]["replicas"] >= 2
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    image = helm["dagsterWebserver"]["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert container["command"] == dockerfile.role_commands()["webhooks"]
    (port,) = container["ports"]
    assert port["containerPort"] == int(option(container["command"], "--port") or 0)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/webhooks/health", "port": port["name"]}
    assert {"name": "ML_CONNECTOR_ROLE", "value": "webhooks"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "ml-connector-secrets"}}]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    service = rendered["Service"]
    assert (
        service["spec"]["selector"]
        == deployment["spec"]["selector"]["matchLabels"]
        == pod["metadata"]["labels"]
    )
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert rendered["PodDisruptionBudget"]["spec"]["selector"] == deployment["spec"]["selector"]


def test_the_shared_claim_is_read_write_many_and_named_as_helm_mounts_it(
    rendered: dict[str, dict[str, Any]], helm: dict[str, Any]
) -> None:
    claim = rendered["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert claim["metadata"]["name"] == deployment["volumes"][0]["persistentVolumeClaim"]["claimName"]
