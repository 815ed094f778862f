"""Two orchestrator processes on one store behave as one service: what one imports, patches or deletes, the
other serves within the sync bound; either answers for any import; an import whose process is killed is
finished by the other. Real tritonserver (tiny models), real HTTP, a shared SQLite catalog, and a shared
MongoDB database when MONGODB_URI is set."""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import (
    ADMIN,
    running_orchestrator,
    skip_without_server,
    store_url,
    wait_for_import,
)

pytestmark = pytest.mark.integration
SYNC_INTERVAL_S = 0.5
# the documented bound: one sync interval plus the poll's own work; the margin covers a loaded 2-core CI box
CONVERGENCE_BOUND_S = SYNC_INTERVAL_S + 4.0
LEASE_S = 3.0
REPLICA_ENV = {"SNAPFIT_CATALOG__SYNC_INTERVAL_S": str(SYNC_INTERVAL_S),
               "SNAPFIT_CATALOG__IMPORT_LEASE_S": str(LEASE_S), "SNAPFIT_CATALOG__IMPORT_BATCH_SIZE": "4"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("replica_catalog"), count=160, seed=3)


def start_import(client: httpx.Client, csv_path: Path, rows: int | None = None) -> str:
    data = csv_path.read_bytes()
    if rows is not None:
        data = b"\n".join(data.splitlines()[: rows + 1]) + b"\n"
    started = client.post("/v1/catalog/imports", files={"file": ("catalog.csv", data)},
                          data={"base_dir": str(csv_path.parent)})
    assert started.status_code == 202, started.text
    return started.json()["job_id"]


def search_ids(client: httpx.Client, **params) -> list[str]:
    response = client.get("/v1/search", params={"k": 100, **params})
    assert response.status_code == 200, response.text
    return [hit["product"]["product_id"] for hit in response.json()["results"]]


def converges(check, bound_s: float = CONVERGENCE_BOUND_S) -> float:
    """Seconds until check() holds; fails past bound_s."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < bound_s, f"replicas did not converge within {bound_s} s"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture(params=["sqlite", "mongodb"])
def shared_store(request, tmp_path) -> tuple[str, str]:
    """(store kind, URL) of one catalog both replicas open."""
    skip_without_server(request.param)
    # SQLite: one file both open; MongoDB: a database named after this test's folder (dropped afterwards)
    return request.param, store_url(request.param, tmp_path / "shared" if request.param == "sqlite" else tmp_path)


def test_changes_through_one_replica_reach_the_other_within_the_bound(triton_server, catalog, tmp_path,
                                                                      shared_store):
    kind, shared = shared_store
    (tmp_path / "shared").mkdir()
    with ExitStack() as stack:
        a, b = (stack.enter_context(running_orchestrator(triton_server.grpc_url, tmp_path / name, catalog.parent,
                                                         kind, extra_env=REPLICA_ENV, catalog_url=shared))
                for name in ("a", "b"))
        ca = stack.enter_context(httpx.Client(headers=ADMIN, base_url=a.base, timeout=60))
        cb = stack.enter_context(httpx.Client(headers=ADMIN, base_url=b.base, timeout=60))

        job_id = start_import(ca, catalog, rows=60)
        assert cb.get(f"/v1/catalog/imports/{job_id}").json()["total_rows"] == 60  # b answers for a's job
        done = wait_for_import(cb, job_id)
        assert (done["status"], done["inserted"], done["failed"]) == ("succeeded", 60, 0), done

        query = {"q": "red dress"}
        converges(lambda: len(search_ids(cb, **query)) == 60)
        assert search_ids(cb, **query) == search_ids(ca, **query)

        # b patches a product into another category: a's filtered search follows
        moved = search_ids(ca, **query)[0]
        patched = cb.patch(f"/v1/products/{moved}", json={"category": "replica-test"})
        assert patched.status_code == 200, patched.text
        assert search_ids(cb, category="replica-test", **query) == [moved]  # its own change: at once
        waited = converges(lambda: search_ids(ca, category="replica-test", **query) == [moved])
        print(f"a patch through b reached a's search after {waited:.2f} s")
        # ... and so does the metadata a's search shows (a had it in memory from the searches above)
        shown = ca.get("/v1/search", params={"k": 100, **query}).json()["results"]
        assert next(hit["product"]["category"] for hit in shown if hit["product"]["product_id"] == moved) \
            == "replica-test"

        # a deletes it: b stops returning it, and its metadata is gone at once on both
        assert ca.delete(f"/v1/products/{moved}").status_code == 204
        assert cb.get(f"/v1/products/{moved}").status_code == 404
        converges(lambda: moved not in search_ids(cb, **query))
        assert len(search_ids(cb, **query)) == 59 == len(search_ids(ca, **query))

        # the index generation each replica has applied is exported for the dashboard
        metrics = [c.get("/metrics").text for c in (ca, cb)]
        assert all("snapfit_index_generation" in text for text in metrics)


def test_an_import_whose_replica_is_killed_is_finished_by_the_other(triton_server, catalog, tmp_path, shared_store):
    kind, shared = shared_store
    (tmp_path / "shared").mkdir()
    with running_orchestrator(triton_server.grpc_url, tmp_path / "b", catalog.parent, kind, extra_env=REPLICA_ENV,
                              catalog_url=shared) as b, httpx.Client(headers=ADMIN, base_url=b.base, timeout=60) as cb:
        with running_orchestrator(triton_server.grpc_url, tmp_path / "a", catalog.parent, kind,
                                  extra_env=REPLICA_ENV, catalog_url=shared) as a:
            with httpx.Client(headers=ADMIN, base_url=a.base, timeout=60) as ca:
                job_id = start_import(ca, catalog)
                deadline = time.monotonic() + 300
                while (job := cb.get(f"/v1/catalog/imports/{job_id}").json())["processed_rows"] < 40:
                    assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
                    time.sleep(0.05)
            a.process.send_signal(signal.SIGKILL)  # no clean shutdown: the lease just stops being renewed
            a.process.wait()
        assert job["processed_rows"] < 160, "the import finished before its replica could be killed"

        done = wait_for_import(cb, job_id)
        assert done["status"] == "succeeded" and done["resumed"] == 1, done
        assert (done["total_rows"], done["processed_rows"], done["failed"]) == (160, 160, 0), done
        assert done["inserted"] + done["unchanged"] == 160 and done["updated"] == 0
        converges(lambda: len(search_ids(cb, q="shirt")) == 100)
        assert cb.get("/readyz").status_code == 200
