"""`snapfit serve` as a subprocess on a free port, for tests over real HTTP; stopped by PID, never by name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from benchmarks.stack import stop_process
from tests.conftest import free_port

STORES = ("sqlite", "mongomock", "mongodb")
ADMIN_TOKEN = "integration-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # headers of a client allowed to change the catalog
REPO_ROOT = Path(__file__).resolve().parents[2]


def store_url(store: str, runs: Path) -> str:
    """store: "sqlite" (a file under runs), "mongomock" (in-process in the orchestrator) or "mongodb" (the server
    at $MONGODB_URI, in a database named after `runs`; the caller skips when MONGODB_URI is unset)."""
    if store == "sqlite":
        return f"sqlite:///{runs / 'catalog.db'}"
    if store == "mongomock":
        return f"mongomock://localhost/{runs.name}"
    parts = urlsplit(os.environ["MONGODB_URI"])
    return urlunsplit(parts._replace(path=f"/snapfit_test_{runs.name}"))


def skip_without_server(store: str) -> None:
    if store == "mongodb" and not os.environ.get("MONGODB_URI"):
        pytest.skip("set MONGODB_URI to run against a real MongoDB")


@dataclass
class OrchestratorProcess:
    base: str  # http://127.0.0.1:PORT
    process: subprocess.Popen


@contextmanager
def running_orchestrator(grpc_url: str, runs: Path, image_root: Path, store: str = "sqlite",
                         extra_env: dict[str, str] | None = None,
                         catalog_url: str | None = None, data: Path | None = None) -> Iterator[OrchestratorProcess]:
    """Starts the orchestrator, waits for /healthz, yields it, then SIGTERMs exactly that process (if still alive).

    catalog_url: another store than the one `store` names under `runs` (replicas sharing one store).
    data: where the SQLite store, the index and the uploads live (default `runs`, which also keeps the log)."""
    port = free_port()
    data = data or runs
    catalog_url = catalog_url or store_url(store, data)
    env = dict(os.environ, SNAPFIT_TRITON__GRPC_URL=grpc_url, SNAPFIT_CATALOG__URL=catalog_url,
               SNAPFIT_CATALOG__INDEX_PATH=str(data / "index"), SNAPFIT_CATALOG__IMAGE_ROOT=str(image_root),
               SNAPFIT_HOST="127.0.0.1", SNAPFIT_ADMIN_TOKEN=ADMIN_TOKEN,
               # tests load the API from one address; the ones about the rate limit set it
               SNAPFIT_RATE_LIMIT__PER_CLIENT_PER_MINUTE="0", **(extra_env or {}))
    runs.mkdir(parents=True, exist_ok=True)
    log_path = runs / "orchestrator.log"
    with open(log_path, "wb") as log:
        # mongomock is a test stand-in the production CLI does not open: its store needs the test entry point
        command = ([sys.executable, "-m", "tests.support.serve_orchestrator"] if store == "mongomock"
                   else [str(Path(sys.executable).with_name("snapfit")), "serve"])
        process = subprocess.Popen([*command, "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "orchestrator did not answer /healthz in 120 s"
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            yield OrchestratorProcess(base, process)
        finally:
            stop_process(process)
            if store == "mongodb":
                _drop_database(env["SNAPFIT_CATALOG__URL"])


def _drop_database(url: str) -> None:
    import pymongo

    with pymongo.MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(urlsplit(url).path.strip("/"))


def post_import(client: httpx.Client, csv_path: Path) -> httpx.Response:
    """POST /v1/catalog/imports of the CSV at csv_path, its relative image paths resolved beside it."""
    return client.post("/v1/catalog/imports", files={"file": ("catalog.csv", csv_path.read_bytes())},
                       data={"base_dir": str(csv_path.parent)})


def start_import(client: httpx.Client, csv_path: Path) -> str:
    """The job id of an import of csv_path, which must be accepted."""
    started = post_import(client, csv_path)
    assert started.status_code == 202, started.text
    return started.json()["job_id"]


def assert_unavailable(response: httpx.Response, code: str) -> None:
    """A 503 with Retry-After and our error body with `code` (model_unavailable, store_unavailable)."""
    assert response.status_code == 503, response.text
    assert float(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error


def wait_for_import(client: httpx.Client, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/catalog/imports/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"import {job_id} did not finish")
