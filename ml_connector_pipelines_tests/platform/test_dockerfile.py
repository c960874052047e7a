"""The Dockerfile, checked without Docker: what it copies exists, and every command it documents runs.

Docker is not available here, so the file is parsed: COPY sources must exist in the repo, the default
CMD and every role command (the `role.*` labels, and the `docker run IMAGE ...` lines in the header
comment) must resolve in this venv, and the two long-running servers are started for real.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml
from dagster._grpc.client import DagsterGrpcClient

from ml_connector_pipelines.cli import build_parser
from ml_connector_pipelines.core.vault import generate_key

from ..conftest import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ROLES = {"code-server", "webserver", "daemon", "webhooks"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined; comment lines are skipped, as Docker does."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
        pending = ""
    return instructions


def key_values(value: str) -> dict[str, str]:
    """`ENV` / `LABEL` arguments: key=value pairs, values possibly quoted."""
    return dict(item.split("=", 1) for item in shlex.split(value))


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], value)


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    header: str

    def all(self, keyword: str) -> list[str]:
        return [i.value for i in self.instructions if i.keyword == keyword]

    @property
    def env(self) -> dict[str, str]:
        return {k: v for value in self.all("ENV") for k, v in key_values(value).items()}

    @property
    def labels(self) -> dict[str, str]:
        return {k: v for value in self.all("LABEL") for k, v in key_values(value).items()}

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY from the repo, flags dropped and ${VARS} expanded."""
        result = []
        for value in self.all("COPY"):
            if "--from=" in value:  # from another build stage, not from the repo
                continue
            words = [w for w in shlex.split(value) if not w.startswith("--")]
            result.append((words[:-1], expand(words[-1], self.env)))
        return result

    @property
    def cmd(self) -> list[str]:
        (value,) = self.all("CMD")
        return json.loads(value)  # exec form: no shell between Docker and the process

    def role_commands(self) -> dict[str, list[str]]:
        return {
            k.removeprefix("role."): shlex.split(v) for k, v in self.labels.items() if k.startswith("role.")
        }

    def documented_commands(self) -> list[list[str]]:
        """The `docker run [-p ..] IMAGE <command>` examples of the header comment."""
        found = re.findall(r"^#\s+docker run .*?IMAGE(.*)$", self.header, flags=re.MULTILINE)
        return [shlex.split(command) for command in found]


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    text = (REPO / "Dockerfile").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    return Dockerfile(parse_dockerfile(text), header)


def option(command: list[str], *names: str) -> str | None:
    for i, word in enumerate(command[:-1]):
        if word in names:
            return command[i + 1]
    return None


def stages(dockerfile: Dockerfile) -> dict[str, list[Instruction]]:
    """Instructions per build stage, by the stage's `AS` name."""
    result: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            current = result.setdefault(instruction.value.split()[-1], [])
        current.append(instruction)
    return result


def test_two_stages_and_the_runtime_runs_as_an_unprivileged_user(dockerfile: Dockerfile) -> None:
    assert dockerfile.all("FROM") == ["python:3.11-slim AS build", "python:3.11-slim AS runtime"]
    runtime = stages(dockerfile)["runtime"]
    # The runtime stage takes only the built virtualenv from the build stage, no source tree.
    assert [i.value for i in runtime if i.keyword == "COPY" and i.value.startswith("--from=")] == [
        "--from=build /opt/venv /opt/venv"
    ]
    users = [i.value for i in runtime if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any("useradd" in i.value and users[-1] in i.value for i in runtime if i.keyword == "RUN")
    # Nothing runs as root after the switch: the last USER comes after every RUN.
    keywords = [i.keyword for i in runtime]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert last_user > max(i for i, k in enumerate(keywords) if k == "RUN")
    dagster_home = dockerfile.env["DAGSTER_HOME"]
    assert dockerfile.all("WORKDIR")[-1] == "${DAGSTER_HOME}"
    copied = {Path(dest) / Path(src).name for sources, dest in dockerfile.copies() for src in sources}
    assert Path(dagster_home, "dagster.yaml") in copied
    assert Path(dagster_home, "workspace.yaml") in copied


def test_dependencies_come_only_from_the_lock_file_with_hashes(dockerfile: Dockerfile) -> None:
    installs = [run for run in dockerfile.all("RUN") if "pip install" in run]
    assert installs == [
        "/opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock",
        "/opt/venv/bin/pip install --no-deps --no-build-isolation .",
    ]
    # The lock is copied before the project, so a code change does not reinstall the dependencies.
    sources = [src for sources, _ in dockerfile.copies() for src in sources]
    assert sources.index("requirements.lock") < sources.index("ml_connector_pipelines")


def test_the_lock_pins_every_dependency_of_the_project_and_its_build() -> None:
    """requirements.lock covers pyproject's dependencies and build requirements (`make lock`)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = (REPO / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", lock, flags=re.MULTILINE))
    pinned = {canonicalize_name(name): version for name, version in pinned.items()}
    # Every pin carries at least one hash, so pip --require-hashes accepts the file.
    blocks = re.split(r"^(?=[A-Za-z0-9])", lock, flags=re.MULTILINE)
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = project["project"]["dependencies"] + project["build-system"]["requires"]
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in pinned, f"{spec.name} is not in requirements.lock: run `make lock`"
        assert spec.specifier.contains(pinned[name]), f"{spec} but the lock pins {pinned[name]}: make lock"


def test_the_project_is_pip_installed_from_what_was_copied(dockerfile: Dockerfile) -> None:
    sources = {src for sources, _ in dockerfile.copies() for src in sources}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    # setuptools needs the readme named in pyproject to build, and the package itself.
    assert {"pyproject.toml", project["project"]["readme"], "ml_connector_pipelines"} <= sources


def test_the_healthcheck_is_the_role_aware_script(dockerfile: Dockerfile) -> None:
    (healthcheck,) = dockerfile.all("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert json.loads(command) == ["ml-connector-healthcheck"]
    assert "--interval=" in options and "--start-period=" in options
    assert ("deploy/healthcheck.sh", "/usr/local/bin/ml-connector-healthcheck") in [
        (sources[0], dest) for sources, dest in dockerfile.copies()
    ]
    # Every role of the image has its check (and a run container one that always passes).
    script = (REPO / "deploy" / "healthcheck.sh").read_text()
    assert set(re.findall(r"^  ([a-z-]+)\)$", script, flags=re.MULTILINE)) == ROLES | {"run"}


def test_every_copied_file_exists_in_the_repo(dockerfile: Dockerfile) -> None:
    sources = [src for sources, _ in dockerfile.copies() for src in sources]
    assert sources
    for src in sources:
        path = REPO / src
        assert path.exists(), f"Dockerfile copies {src}, which is not in the repo"
        assert path.is_file() or any(path.iterdir())


def test_the_documented_commands_are_the_labelled_roles(dockerfile: Dockerfile) -> None:
    roles = dockerfile.role_commands()
    assert set(roles) == ROLES
    assert roles["code-server"] == dockerfile.cmd
    documented = dockerfile.documented_commands()
    assert len(documented) == len(ROLES)
    for command in documented:
        if command:  # `docker run IMAGE` alone is the default CMD
            assert command in roles.values()
    exposed = {int(port) for value in dockerfile.all("EXPOSE") for port in value.split()}
    ports = {int(p) for c in roles.values() if (p := option(c, "-p", "--port"))}
    assert ports == exposed == {4000, 3000, 8800}


def test_every_command_resolves_in_the_venv(dockerfile: Dockerfile) -> None:
    for role, command in dockerfile.role_commands().items():
        executable = VENV_BIN / command[0]
        assert executable.is_file() and os.access(executable, os.X_OK), f"{role}: {command[0]} not installed"
        module = option(command, "-m", "--module-name")
        if module:
            attribute = option(command, "-a", "--attribute") or "defs"
            assert isinstance(getattr(importlib.import_module(module), attribute), dg.Definitions)
        if command[0] == "ml-connector":
            args = build_parser().parse_args(command[1:])
            assert args.func.__name__ == "cmd_webhooks_serve"
            continue
        # Click rejects an unknown subcommand or option before it prints the help: a dry run of the command.
        checked = subprocess.run(
            [str(executable), *command[1:], "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0, f"{role}: {checked.stderr[-500:]}"


def test_workspace_yaml_loads_the_code_location(dockerfile: Dockerfile, tmp_path: Path) -> None:
    """What the webserver and daemon roles load: every location in workspace.yaml validates."""
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["python_module"]["location_name"] == option(dockerfile.cmd, "--location-name")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = subprocess.run(
        [str(VENV_BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]


def on_free_port(command: list[str]) -> tuple[list[str], int]:
    """The image's command, bound to loopback on a free port instead of 0.0.0.0 on the fixed one."""
    port = free_port()
    replaced = {"0.0.0.0": "127.0.0.1", option(command, "-p", "--port"): str(port)}
    return [replaced.get(word, word) for word in command], port


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by a test; each in its own session, so its children are stopped with it."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(VENV_BIN / command[0]), *command[1:]],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """deploy/healthcheck.sh as the image runs it, with this venv first on PATH like /opt/venv/bin."""
    env = {**env, "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"}
    script = REPO / "deploy" / "healthcheck.sh"
    return subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=60)


def runtime_env(tmp_path: Path) -> dict[str, str]:
    """The environment the image provides: DAGSTER_HOME, ML_CONNECTOR_HOME and a master key."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_CONNECTOR_", "DAGSTER_"))}
    return {
        **env,
        "DAGSTER_HOME": str(dagster_home),
        "ML_CONNECTOR_HOME": str(tmp_path / "home"),
        "ML_CONNECTOR_MASTER_KEY": generate_key(),
    }


def test_the_default_command_serves_the_code_location_over_grpc(
    dockerfile: Dockerfile, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    command, port = on_free_port(dockerfile.cmd)
    log = tmp_path / "code-server.log"
    started.append(start(command, runtime_env(tmp_path), log))
    client = DagsterGrpcClient(port=port, host="127.0.0.1")

    response = None
    for _ in range(600):  # bounded wait while the server imports the code location
        try:
            response = dg.deserialize_value(client.list_repositories())
            break
        except Exception:  # not listening yet, or still loading the code
            assert started[0].poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)

    assert response is not None, log.read_text()[-2000:]
    assert type(response).__name__ == "ListRepositoriesResponse", getattr(response, "message", response)
    assert "__repository__" in response.repository_code_pointer_dict
    # The image's HEALTHCHECK for this role (the default one) passes against the live server...
    env = {**runtime_env(tmp_path / "check"), "DAGSTER_GRPC_PORT": str(port)}
    assert healthcheck(env).returncode == 0
    # ...and fails where no server listens.
    assert healthcheck({**env, "DAGSTER_GRPC_PORT": str(free_port())}).returncode != 0


def test_the_webhooks_command_serves_the_receiver(
    dockerfile: Dockerfile, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    command, port = on_free_port(dockerfile.role_commands()["webhooks"])
    log = tmp_path / "webhooks.log"
    started.append(start(command, runtime_env(tmp_path), log))

    health = None
    for _ in range(600):
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/webhooks/health", timeout=5)
            break
        except httpx.TransportError:
            assert started[0].poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)

    assert health is not None and health.status_code == 200
    env = {**runtime_env(tmp_path / "check"), "ML_CONNECTOR_ROLE": "webhooks"}
    assert healthcheck({**env, "ML_CONNECTOR_WEBHOOKS_PORT": str(port)}).returncode == 0
    assert healthcheck({**env, "ML_CONNECTOR_WEBHOOKS_PORT": str(free_port())}).returncode != 0
    # An event for a tenant nobody registered is refused, not stored.
    refused = httpx.post(f"http://127.0.0.1:{port}/webhooks/stripe/NOBODY", content=b"{}", timeout=5)
    assert 400 <= refused.status_code < 500
