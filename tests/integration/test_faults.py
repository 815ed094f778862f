"""Faults injected into real processes: a tritonserver killed (SIGKILL) or frozen (SIGSTOP) under a running
`snapfit serve`, during searches and during an import. What the client sees, what is lost (nothing) and how long
recovery takes; docs/reliability.md quotes these tests. Every process is started here and stopped by PID.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from snapfit.demo_catalog import generate_catalog
from snapfit.triton.launcher import TritonLaunch, TritonPorts, TritonServer
from tests.conftest import free_port
from tests.integration.orchestrator_process import (
    ADMIN,
    assert_unavailable,
    running_orchestrator,
    start_import,
    wait_for_import,
)
from tests.support.process_stats import open_fds, rss_kib

pytestmark = pytest.mark.integration
DEADLINE_S = 2.0  # the orchestrator's per-call Triton deadline in these tests (SNAPFIT_TRITON__TIMEOUT_S)
# a refusal must come within the deadline, plus the client's retries of transient errors and HTTP
ANSWER_WITHIN_S = DEADLINE_S + 3.0
FROZEN_S = 10.0  # how long Triton stays frozen (SIGSTOP)
FROZEN_CLIENTS = 8  # clients searching meanwhile, each sending its next search when the last one is answered
# what the API may grow by while requests pile up against a frozen Triton: each waits at most its deadline, so
# the in-flight requests (and their memory) are bounded by the clients, not by the freeze's length
FROZEN_RSS_GROWTH_MB = 64


class TritonUnderTest:
    """A tritonserver on the tiny repository on fixed ports, so it can be killed and started again in place."""

    def __init__(self, repository: Path, logs: Path):
        self.launch = TritonLaunch(repository=repository,
                                   ports=TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port()))
        self.logs = logs
        self.server: TritonServer | None = None
        self.starts = 0

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.launch.ports.grpc}"

    def start(self) -> None:
        self.starts += 1
        self.server = TritonServer(self.launch, log_path=self.logs / f"tritonserver-{self.starts}.log").start()
        self.server.wait_until_ready(timeout_s=300)

    def kill(self) -> None:
        os.kill(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(timeout=30)
        self.server.stop()  # reaps the stubs the killed server left

    def freeze(self) -> None:
        os.kill(self.server.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.server.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.server is not None:
            self.thaw()
            self.server.stop()


@pytest.fixture
def triton(tiny_repository, tmp_path) -> Iterator[TritonUnderTest]:
    under_test = TritonUnderTest(tiny_repository, tmp_path)
    under_test.start()
    try:
        yield under_test
    finally:
        under_test.stop()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("catalog"), count=120, seed=9)


def import_under_way(client: httpx.Client, csv_path: Path, rows: int = 16) -> str:
    """Starts an import and returns its job id once `rows` rows are done (the fault lands mid-import)."""
    job_id = start_import(client, csv_path)
    while client.get(f"/v1/catalog/imports/{job_id}").json()["processed_rows"] < rows:
        time.sleep(0.02)
    return job_id


def timed_search(client: httpx.Client, query: str = "red dress") -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get("/v1/search", params={"q": query})
    return response, time.monotonic() - started


def assert_refused_in_time(response: httpx.Response, seconds: float) -> None:
    assert_unavailable(response, "model_unavailable")
    assert seconds <= ANSWER_WITHIN_S, f"the refusal took {seconds:.1f} s"


def wait_for_search(client: httpx.Client, timeout_s: float = 60.0) -> float:
    """Seconds until a search answers 200 again."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if client.get("/v1/search", params={"q": "red dress"}).status_code == 200:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"search did not recover within {timeout_s} s")


def test_triton_killed_searches_are_503_in_time_and_recover_without_restarting_the_api(triton, catalog,
                                                                                      tmp_path):
    env = {"SNAPFIT_TRITON__TIMEOUT_S": str(DEADLINE_S)}
    with running_orchestrator(triton.grpc_url, tmp_path / "runs", catalog.parent, extra_env=env) as api:
        with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
            assert wait_for_import(client, start_import(client, catalog))["status"] == "succeeded"
            before = client.get("/v1/search", params={"q": "red dress"}).json()["results"]
            assert before

            triton.kill()
            for _ in range(3):
                assert_refused_in_time(*timed_search(client))
            ready = client.get("/readyz")
            assert ready.status_code == 503 and client.get("/healthz").status_code == 200
            # what was stored is still there: products read from the store without Triton
            assert client.get(f"/v1/products/{before[0]['product']['product_id']}").status_code == 200

            restarted = time.monotonic()
            triton.start()
            recovery_s = wait_for_search(client)
            print(f"\nsearch back {recovery_s:.1f} s after Triton was ready "
                  f"({time.monotonic() - restarted:.1f} s after its restart began)")
            assert client.get("/readyz").status_code == 200
            after = client.get("/v1/search", params={"q": "red dress"}).json()["results"]
            assert [r["product"]["product_id"] for r in after] == [r["product"]["product_id"] for r in before]
        assert api.process.poll() is None  # the same API process throughout


def test_triton_frozen_requests_end_by_their_deadline_and_an_import_rides_it_out(triton, catalog, tmp_path):
    env = {"SNAPFIT_TRITON__TIMEOUT_S": str(DEADLINE_S), "SNAPFIT_CATALOG__IMPORT_BATCH_SIZE": "8",
           "SNAPFIT_CATALOG__IMPORT_RETRY_BUDGET_S": "120"}
    with running_orchestrator(triton.grpc_url, tmp_path / "runs", catalog.parent, extra_env=env) as api:
        with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
            for _ in range(20):  # the search path at its working size before the freeze
                client.get("/v1/search", params={"q": "red dress"})
            job_id = import_under_way(client, catalog)
            rss_before, fds_before = rss_kib(api.process.pid), open_fds(api.process.pid)
            triton.freeze()
            try:
                frozen_at = time.monotonic()
                with ThreadPoolExecutor(FROZEN_CLIENTS) as pool:  # searches keep coming while it is frozen
                    answers = [a for batch in pool.map(lambda _: searches_until(api.base, frozen_at + FROZEN_S),
                                                       range(FROZEN_CLIENTS)) for a in batch]
                    job = client.get(f"/v1/catalog/imports/{job_id}").json()
                rss_frozen, fds_frozen = rss_kib(api.process.pid), open_fds(api.process.pid)
                assert job["status"] == "running" and "waiting for" in (job["message"] or ""), job
            finally:
                triton.thaw()
            for response, seconds in answers:
                assert_refused_in_time(response, seconds)
            growth_mb = (rss_frozen - rss_before) / 1024
            slowest_s = max(seconds for _, seconds in answers)
            print(f"\nfrozen {FROZEN_S:.0f} s: {len(answers)} searches from {FROZEN_CLIENTS} clients, all 503 in "
                  f"≤ {slowest_s:.1f} s; API RSS {rss_before / 1024:.0f} -> {rss_frozen / 1024:.0f} MB, "
                  f"open fds {fds_before} -> {fds_frozen}")
            assert growth_mb < FROZEN_RSS_GROWTH_MB and fds_frozen <= fds_before + 2 * FROZEN_CLIENTS
            done = wait_for_import(client, job_id)
            recovery_s = wait_for_search(client)
            print(f"import {done['status']} after the freeze; search back {recovery_s:.1f} s after SIGCONT")
            assert (done["status"], done["inserted"], done["failed"], done["resumed"]) == ("succeeded", 120, 0, 0), \
                done
            assert done["message"] == ""
            assert client.get("/v1/products", params={"limit": 200}).json()["total"] == 120


def searches_until(base: str, deadline: float) -> list[tuple[httpx.Response, float]]:
    """One client's searches, one after the other, until `deadline` (monotonic)."""
    answers = []
    with httpx.Client(base_url=base, timeout=60) as client:
        while time.monotonic() < deadline:
            answers.append(timed_search(client))
    return answers


def test_triton_down_past_the_retry_budget_stops_the_import_resumably_and_resume_completes_it(triton, catalog,
                                                                                             tmp_path):
    env = {"SNAPFIT_TRITON__TIMEOUT_S": str(DEADLINE_S), "SNAPFIT_CATALOG__IMPORT_BATCH_SIZE": "8",
           "SNAPFIT_CATALOG__IMPORT_RETRY_BUDGET_S": "3"}
    with running_orchestrator(triton.grpc_url, tmp_path / "runs", catalog.parent, extra_env=env) as api:
        with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
            job_id = import_under_way(client, catalog)
            triton.kill()
            failed = wait_for_import(client, job_id)
            assert failed["status"] == "failed" and f"/v1/catalog/imports/{job_id}/resume" in failed["message"]
            kept = failed["inserted"]
            assert 16 <= kept < 120 and client.get("/v1/products").json()["total"] == kept

            refused = client.post(f"/v1/catalog/imports/{job_id}/resume", headers={"Authorization": "Bearer no"})
            assert refused.status_code == 403
            triton.start()
            wait_for_search(client)  # resumed once Triton is back, as the admin page's banner suggests
            resumed = client.post(f"/v1/catalog/imports/{job_id}/resume")
            assert resumed.status_code == 202, resumed.text
            done = wait_for_import(client, job_id)
            assert (done["status"], done["resumed"], done["failed"]) == ("succeeded", 1, 0), done
            assert done["inserted"] + done["unchanged"] == 120 and done["inserted"] >= 120 - kept - 8
            assert client.get("/v1/products").json()["total"] == 120
            again = client.post(f"/v1/catalog/imports/{job_id}/resume")
            assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
