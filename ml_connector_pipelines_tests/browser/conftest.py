"""The Dagster UI as a user sees it: the demo's instance served by dagster-webserver, driven by chromium.

Debian's `chromium` package is the browser (Playwright downloads none). Without it the browser tests
skip with the reason, except in CI (`CI=true`), where `.ci/run` installs it and a missing one fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_connector_pipelines.sandbox.host import SandboxServer

from ..conftest import DemoRun, free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("ML_CONNECTOR_CHROMIUM", "/usr/bin/chromium")
# Screenshots go to a tmp folder; `make screenshots` points this at docs/screenshots.
SCREENSHOTS = os.environ.get("ML_CONNECTOR_SCREENSHOTS", "")
STARTUP_SECONDS = 180


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        return f"chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    problem = _missing_browser()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem + "; CI requires it (.ci/run installs chromium)")
        pytest.skip(problem)
    return CHROMIUM


@dataclass
class DagsterUI:
    url: str
    env: dict[str, str]
    dagster_home: Path
    screenshots: Path

    def shot(self, page: Any, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        page.screenshot(path=str(path))
        return path


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(VENV_BIN / command[0]), *command[1:]],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS  # a bound on the wait, not an assertion
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def dagster_ui(chromium: str, demo_run: DemoRun) -> Iterator[DagsterUI]:
    """The demo's instance (the run the demo test checks, conftest.demo_run) served by
    dagster-webserver + daemon.

    The demo stops its sandbox when it ends; a sandbox on the same port (same seed) comes back up so
    that runs launched from the UI reach the Infor simulator the demo tenant is registered against.
    """
    assert demo_run.code == 0, demo_run.out[-3000:]
    root, sandbox_port = demo_run.root, demo_run.sandbox_port
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ML_CONNECTOR_", "DAGSTER_"))}
    env = {
        **keep,
        "PYTHONPATH": os.pathsep.join([str(REPO), keep.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        **demo_run.env,
    }

    sandbox = SandboxServer(port=sandbox_port, seed=7).start()
    port = free_port()
    processes = [
        _start(
            ["dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            env, root / "webserver.log",
        ),
        _start(["dagster-daemon", "run", "-w", "workspace.yaml"], env, root / "daemon.log"),
    ]  # fmt: skip
    screenshots = Path(SCREENSHOTS) if SCREENSHOTS else root / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_http(f"{url}/server_info", processes[0], root / "webserver.log")
        yield DagsterUI(url, env, root / "dagster_home", screenshots)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        sandbox.stop()


@pytest.fixture(scope="module")
def browser(chromium: str, dagster_ui: DagsterUI) -> Iterator[Any]:
    # Playwright's sync API keeps an event loop running on this thread while it is open; Dagster's
    # in-process runs (the demo behind `dagster_ui`, other modules' tests on this worker) then cannot
    # shut theirs down (a RuntimeWarning each). So the demo runs first, and the browser closes with
    # this module.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, dagster_ui: DagsterUI) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 860}, base_url=dagster_ui.url)
    context.set_default_timeout(60_000)
    page = context.new_page()
    # The UI greets a new browser with a newsletter dialog over the page; dismiss it whenever it shows.
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda: page.get_by_role("button", name="Skip").click(),
    )
    yield page
    context.close()
