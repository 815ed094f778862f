"""The web pages in a real browser: Debian's headless chromium driven by Playwright, against the real stack
(tritonserver on the tiny models, `snapfit serve` over HTTP, an imported demo catalog).

Chromium is the system's (`make env` installs Debian's package); `playwright install` is never run. Without
chromium the tests skip, except under `make test` (BROWSER_REQUIRED=1), where they fail. Screenshots of every
step go to runs/browser-artifacts/<test>/ (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from snapfit.demo_catalog import generate_catalog
from snapfit.triton.launcher import TritonLaunch, TritonPorts, TritonServer
from tests.conftest import free_port
from tests.integration.orchestrator_process import ADMIN, REPO_ROOT, running_orchestrator, wait_for_import
from tests.support.photos import no_person_jpeg, person_jpeg

pytestmark = pytest.mark.integration
ARTIFACTS = REPO_ROOT / "runs" / "browser-artifacts"
CATALOG_SIZE = 24
TRYON_STEPS = 40  # enough steps on the tiny model for the page to show progress and to cancel in time


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        message = f"no chromium at {path}: `make env` installs Debian's package"
        if os.environ.get("BROWSER_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser():
    """Module-scoped on purpose: while Playwright's sync API is open it runs an event loop on the main thread,
    and every later asyncio test (asyncio.run, pytest-asyncio) would fail with "a loop is already running"."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Stack:
    base: str
    triton: TritonServer
    launch: TritonLaunch
    catalog_dir: Path
    ready_product: str
    unready_product: str

    def stop_triton(self) -> None:
        self.triton.stop()

    def start_triton(self) -> None:
        """A new tritonserver on the same ports (the orchestrator reconnects to them)."""
        self.triton = TritonServer(self.launch, log_path=self.triton.log_path)
        self.triton.start()
        self.triton.wait_until_ready(timeout_s=600)


@pytest.fixture(scope="module")
def stack(tiny_repository, tmp_path_factory) -> Iterator[Stack]:
    """Its own tritonserver (a test stops and restarts it) and orchestrator, with a demo catalog imported."""
    root = tmp_path_factory.mktemp("browser_stack")
    launch = TritonLaunch(repository=tiny_repository,
                          ports=TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port()))
    server = TritonServer(launch, log_path=root / "tritonserver.log")
    server.start()
    stack = None
    try:
        server.wait_until_ready(timeout_s=600)
        catalog = generate_catalog(root / "catalog", count=CATALOG_SIZE, seed=5)
        env = {"SNAPFIT_TRYON__DEFAULT_STEPS": str(TRYON_STEPS), "SNAPFIT_TRYON__MAX_RUNNING": "1",
               # the page's readiness banner must react within a test's patience
               "SNAPFIT_TRITON__TIMEOUT_S": "10"}
        with running_orchestrator(server.grpc_url, root / "runs", root, extra_env=env) as running:
            with httpx.Client(base_url=running.base, headers=ADMIN, timeout=120) as client:
                started = client.post("/v1/catalog/imports", files={"file": ("catalog.csv", catalog.read_bytes())},
                                      data={"base_dir": str(catalog.parent)})
                assert started.status_code == 202, started.text
                assert wait_for_import(client, started.json()["job_id"])["inserted"] == CATALOG_SIZE
                tops = client.get("/v1/search", params={"q": "shirt", "k": CATALOG_SIZE}).json()["results"]
                ready, unready = tops[0]["product"]["product_id"], tops[1]["product"]["product_id"]
                assert client.patch(f"/v1/products/{ready}", json={"tryon_ready": True}).status_code == 200
                assert client.patch(f"/v1/products/{unready}", json={"tryon_ready": False}).status_code == 200
            stack = Stack(running.base, server, launch, catalog.parent, ready, unready)
            yield stack
    finally:
        (stack.triton if stack else server).stop()


class Steps:
    """Numbered full-page screenshots of one test's steps under runs/browser-artifacts/<test>/."""

    def __init__(self, page, name: str):
        self.page = page
        self.folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def shot(self, label: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def steps(page, request) -> Steps:
    return Steps(page, request.node.name)


@pytest.fixture(scope="session")
def person_photo() -> bytes:
    return person_jpeg()


@pytest.fixture(scope="session")
def no_person_photo() -> bytes:
    return no_person_jpeg()
