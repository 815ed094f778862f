"""Try-on through the orchestrator over real HTTP, on a real tritonserver serving the tiny LaDI-VTON.

A real photo of a person (skimage's astronaut) is dressed in a catalog product; progress arrives as
Server-Sent Events; the PNG has the photo's size and is the same for the same seed. Refusals (product not
usable for try-on, no person in the photo), the bounded queue (429) and cancellation are checked too.
"""

from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import ADMIN, running_orchestrator, wait_for_import
from tests.support.photos import jpeg, person_jpeg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def person_photo() -> bytes:
    return person_jpeg()


@pytest.fixture(scope="module")
def shop(triton_server, tmp_path_factory):
    """(client, ready product id, unready product id) on an orchestrator with a 1-running + 1-waiting try-on queue."""
    root = tmp_path_factory.mktemp("tryon_shop")
    catalog = generate_catalog(root / "catalog", count=12, seed=4)
    env = {"SNAPFIT_TRYON__MAX_RUNNING": "1", "SNAPFIT_TRYON__MAX_QUEUED": "1",
           "SNAPFIT_TRYON__DEFAULT_STEPS": "4"}
    with running_orchestrator(triton_server.grpc_url, root / "runs", catalog.parent, extra_env=env) as running:
        with httpx.Client(headers=ADMIN, base_url=running.base, timeout=120) as client:
            started = client.post("/v1/catalog/imports", files={"file": ("catalog.csv", catalog.read_bytes())},
                                  data={"base_dir": str(catalog.parent)})
            assert wait_for_import(client, started.json()["job_id"])["inserted"] == 12
            products = client.get("/v1/search", params={"q": "shirt", "k": 12, "category": "top"}).json()["results"]
            ready, unready = products[0]["product"]["product_id"], products[1]["product"]["product_id"]
            assert client.patch(f"/v1/products/{ready}", json={"tryon_ready": True}).status_code == 200
            assert client.patch(f"/v1/products/{unready}", json={"tryon_ready": False}).status_code == 200
            yield client, ready, unready


def follow(client: httpx.Client, job_id: str) -> list[dict]:
    """Every SSE event of a job until `done`: [{"event": ..., "job": {...}}, ...]."""
    events, name = [], None
    with client.stream("GET", f"/v1/tryon/{job_id}/events", timeout=300) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append({"event": name, "job": json.loads(line[5:])})
                if name == "done":
                    break
    return events


def start(client, photo: bytes, product_id: str, **form) -> httpx.Response:
    fields = {"product_id": product_id, **{k: str(v) for k, v in form.items()}}
    return client.post("/v1/tryon", data=fields, files={"file": ("person.jpg", photo, "image/jpeg")})


def test_tryon_streams_progress_and_returns_a_deterministic_png_of_the_photos_size(shop, person_photo):
    client, ready, _ = shop
    results = []
    for _ in range(2):
        response = start(client, person_photo, ready, steps=3, seed=7)
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["category"] == "upper_body" and job["total_steps"] == 3
        events = follow(client, job["job_id"])
        assert events[-1]["event"] == "done" and events[-1]["job"]["status"] == "succeeded", events[-1]
        steps_seen = [e["job"]["step"] for e in events if e["job"]["status"] == "running"]
        assert steps_seen == sorted(steps_seen) and max(steps_seen) == 3
        png = client.get(events[-1]["job"]["result_url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        results.append(png.content)
    image = Image.open(io.BytesIO(results[0]))
    photo = Image.open(io.BytesIO(person_photo))
    assert image.size == photo.size
    assert results[0] == results[1]
    # outside the inpainting mask the photo is pasted back (up to the resize to the model frame and back):
    # the top-left background of the astronaut photo survives, the random-weight noise does not reach it
    corner = np.abs(np.asarray(image.convert("RGB"), np.int16)[:80, :80] - np.asarray(photo, np.int16)[:80, :80])
    assert corner.mean() < 12, corner.mean()
    other_seed = start(client, person_photo, ready, steps=3, seed=8).json()
    assert follow(client, other_seed["job_id"])[-1]["job"]["status"] == "succeeded"
    assert client.get(f"/v1/tryon/{other_seed['job_id']}/result").content != results[0]


def test_refusals_have_clear_errors(shop, person_photo):
    client, ready, unready = shop
    refused = start(client, person_photo, unready)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_tryon_ready"
    assert "force" in refused.json()["error"]["message"]
    forced = start(client, person_photo, unready, force="true", steps=2)
    assert forced.status_code == 202
    assert follow(client, forced.json()["job_id"])[-1]["job"]["status"] == "succeeded"

    from skimage.data import coffee

    nobody = start(client, jpeg(coffee()), ready)
    assert nobody.status_code == 422 and nobody.json()["error"]["code"] == "person_not_found"
    unknown = start(client, person_photo, "no-such-product")
    assert unknown.status_code == 404
    both = client.post("/v1/tryon", data={"product_id": ready, "image_id": "0" * 64},
                       files={"file": ("p.jpg", person_photo, "image/jpeg")})
    assert both.status_code == 422
    bad_category = start(client, person_photo, ready, category="hat")
    assert bad_category.status_code == 422
    assert client.get("/v1/tryon/unknown").status_code == 404
    assert client.get("/v1/tryon/unknown/events").status_code == 404


def test_queue_is_bounded_and_jobs_can_be_cancelled(shop, person_photo):
    client, ready, _ = shop
    long = [start(client, person_photo, ready, steps=500) for _ in range(2)]  # one runs, one waits
    assert [r.status_code for r in long] == [202, 202]
    rejected = start(client, person_photo, ready, steps=2)
    assert rejected.status_code == 429 and rejected.json()["error"]["code"] == "overloaded"
    assert int(rejected.headers["Retry-After"]) >= 1
    not_yet = client.get(f"/v1/tryon/{long[0].json()['job_id']}/result")
    assert not_yet.status_code == 409

    deadline = time.monotonic() + 120
    while client.get(f"/v1/tryon/{long[0].json()['job_id']}").json()["step"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for response in long:
        cancelled = client.delete(f"/v1/tryon/{response.json()['job_id']}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    # the model stopped at its next step, so a new try-on runs right away
    started = time.monotonic()
    quick = start(client, person_photo, ready, steps=2)
    assert quick.status_code == 202
    assert follow(client, quick.json()["job_id"])[-1]["job"]["status"] == "succeeded"
    assert time.monotonic() - started < 60
    metrics = client.get("/metrics").text
    assert "snapfit_tryon_duration_seconds_count" in metrics and 'outcome="cancelled"' in metrics
    assert "snapfit_tryon_queue_length" in metrics and "snapfit_tryon_steps_per_second" in metrics
