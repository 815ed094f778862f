"""The orchestrator over real HTTP, on a real tritonserver (tiny models), on each store (SQLite, mongomock, and
MongoDB when MONGODB_URI is set) with FAISS."""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from orchestrator.masks import decode_png, decode_rle
from orchestrator.schemas import MasksResponse
from orchestrator.timing import parse_header
from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import (
    ADMIN,
    STORES,
    running_orchestrator,
    skip_without_server,
    store_url,
    wait_for_import,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("catalog"), count=120, seed=3)


@pytest.fixture(scope="module", params=STORES)
def orchestrator(request, triton_server, demo_catalog, tmp_path_factory):
    """(base URL, catalog CSV, stored thumbnails counter): one orchestrator per store, each on its own empty store
    and index."""
    skip_without_server(request.param)
    runs = tmp_path_factory.mktemp(f"runs_{request.param}")
    with running_orchestrator(triton_server.grpc_url, runs, demo_catalog.parent, request.param) as running:
        yield running.base, demo_catalog, lambda: stored_thumbnails(request.param, runs)


def stored_thumbnails(store: str, runs: Path) -> int | None:
    """How many thumbnails the orchestrator's store holds, read beside it (None for mongomock: it lives inside the
    orchestrator's process)."""
    if store == "sqlite":
        with closing(sqlite3.connect(runs / "catalog.db")) as catalog:
            return catalog.execute("SELECT COUNT(*) FROM thumbnails").fetchone()[0]
    if store == "mongodb":
        import pymongo

        with pymongo.MongoClient(store_url(store, runs), serverSelectionTimeoutMS=5000) as client:
            return client.get_default_database()["thumbnails"].count_documents({})
    return None


def photo_bytes() -> bytes:
    image = np.full((240, 320, 3), 245, np.uint8)
    image[60:200, 100:220] = (200, 30, 30)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_import_upload_segment_search_and_product(orchestrator):
    base, catalog_csv, thumbnails_stored = orchestrator
    with httpx.Client(headers=ADMIN, base_url=base, timeout=120) as client:
        started = client.post("/v1/catalog/imports", files={"file": ("catalog.csv", catalog_csv.read_bytes())},
                              data={"base_dir": str(catalog_csv.parent)})
        assert started.status_code == 202, started.text
        job = wait_for_import(client, started.json()["job_id"])
        assert job["status"] == "succeeded", job
        assert job["inserted"] == 120 and job["failed"] == 0
        assert thumbnails_stored() in (120, None)  # made by the import, before any image was asked for
        check_product_list_and_thumbnail(client, expected_total=120)

        again = client.post("/v1/catalog/imports", files={"file": ("catalog.csv", catalog_csv.read_bytes())},
                            data={"base_dir": str(catalog_csv.parent)})
        job = wait_for_import(client, again.json()["job_id"])
        assert (job["inserted"], job["updated"], job["unchanged"]) == (0, 0, 120)

        uploaded = client.post("/v1/images", files={"file": ("photo.jpg", photo_bytes(), "image/jpeg")})
        assert uploaded.status_code == 200, uploaded.text
        image_id = uploaded.json()["image_id"]
        masks = client.post(f"/v1/images/{image_id}/masks", json={"points": [{"x": 160, "y": 130, "label": 1}]})
        assert masks.status_code == 200, masks.text
        body = masks.json()
        assert len(body["masks"]) == 3
        MasksResponse.model_validate(body)  # the route writes its JSON itself (orjson): it must keep the schema
        check_server_timing(masks, ["preprocess", "triton.sam_encoder", "triton.sam_decoder", "masks", "encode"])
        png_answer = client.post(f"/v1/images/{image_id}/masks", json={"points": [{"x": 160, "y": 130, "label": 1}],
                                                                        "format": "png"})
        check_server_timing(png_answer, ["triton.sam_decoder", "masks", "encode"])  # the embedding is cached
        as_png = png_answer.json()
        MasksResponse.model_validate(as_png)
        for rle_mask, png_mask in zip(body["masks"], as_png["masks"]):
            assert rle_mask["png"] is None and png_mask["rle"] is None
            np.testing.assert_array_equal(decode_rle(rle_mask["rle"], expected_hw=(240, 320)),
                                          decode_png(png_mask["png"], expected_hw=(240, 320)))
        assert [m["score"] for m in body["masks"]] == sorted((m["score"] for m in body["masks"]), reverse=True)
        chosen = next((m for m in body["masks"] if sum(m["rle"]["counts"][1::2]) > 0), None)
        if chosen is None:  # random tiny weights can give empty masks: use a hand-made one
            chosen = {"rle": {"size": [240, 320], "counts": [240 * 100, 240 * 120, 240 * 100]}}

        found = client.post("/v1/search", json={"image_id": image_id, "mask": {"rle": chosen["rle"]},
                                                "text": "but in black", "k": 5})
        assert found.status_code == 200, found.text
        results = found.json()["results"]
        assert len(results) == 5
        # the garment is cut out while the text tower runs, then the image tower: that crop's stage has no fixed place
        check_server_timing(found, ["triton.clip_text_embed", "triton.clip_image", "index", "store"],
                            overlapped=["preprocess.overlapped"])
        product_id = results[0]["product"]["product_id"]
        assert client.get(f"/v1/products/{product_id}").json()["product_id"] == product_id

        text_only = client.get("/v1/search", params={"q": "red dress", "k": 3, "category": "dress"})
        assert text_only.status_code == 200
        assert all(r["product"]["category"] == "dress" for r in text_only.json()["results"])

        assert client.delete(f"/v1/products/{product_id}").status_code == 204
        after = client.get("/v1/search", params={"q": "anything", "k": 100}).json()["results"]
        assert product_id not in {r["product"]["product_id"] for r in after}
        assert client.get(f"/v1/products/{product_id}").status_code == 404


def check_server_timing(response: httpx.Response, stages: list[str], overlapped: list[str] = ()) -> None:
    """The response says, in its Server-Timing header, how long each of `stages` (in that order) and the whole
    request took inside the orchestrator, and each of `overlapped` (work timed beside one of `stages`, anywhere)."""
    timings = parse_header(response.headers["server-timing"])
    in_order = [name for name in timings if name not in overlapped]
    assert in_order == [*stages, "app"] and set(overlapped) <= set(timings), response.headers["server-timing"]
    assert all(ms > 0 for ms in timings.values())
    assert timings["app"] >= sum(timings[name] for name in stages)  # one after the other in a search or a click


def check_product_list_and_thumbnail(client: httpx.Client, expected_total: int) -> None:
    listed = client.get("/v1/products", params={"limit": 200}).json()
    assert listed["total"] == len(listed["products"]) == expected_total and listed["next_after"] is None
    product_id = listed["products"][0]["product_id"]
    image = client.get(f"/v1/products/{product_id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(image.content)).size) <= 384
    cached = client.get(f"/v1/products/{product_id}/image", headers={"If-None-Match": image.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""


@pytest.mark.parametrize("method, path, kwargs, status, code", [
    ("get", "/v1/products/nope", {}, 404, "not_found"),
    ("get", "/v1/products/nope/image", {}, 404, "not_found"),
    ("get", "/v1/products", {"params": {"limit": 0}}, 422, "invalid_input"),
    ("post", "/v1/images/" + "0" * 64 + "/masks", {"json": {"points": [{"x": 1, "y": 1}]}}, 404, "not_found"),
    ("post", "/v1/images/not-an-id/masks", {"json": {"points": [{"x": 1, "y": 1}]}}, 422, "invalid_input"),
    ("post", "/v1/images", {"files": {"file": ("x.gif", b"GIF89a....", "image/gif")}}, 415, "unsupported_media_type"),
    ("post", "/v1/images", {"files": {"file": ("x.jpg", b"\xff\xd8\xff\xe0broken", "image/jpeg")}}, 400, "bad_request"),
    ("post", "/v1/search", {"json": {}}, 422, "invalid_input"),
    ("get", "/v1/search", {"params": {"q": "x", "k": 100000}}, 422, "invalid_input"),
    ("get", "/v1/catalog/imports/unknown", {}, 404, "not_found"),
    ("post", "/v1/catalog/imports", {"files": {"file": ("c.csv", b"foo,bar\n1,2\n")}}, 400, "bad_request"),
    ("post", "/v1/catalog/imports", {"headers": {}, "files": {"file": ("c.csv", b"id,image\n1,a\n")}}, 401,
     "unauthorized"),
    ("delete", "/v1/products/nope", {"headers": {"Authorization": "Bearer wrong"}}, 403, "forbidden"),
])
def test_client_mistakes_get_their_documented_status_and_body(orchestrator, method, path, kwargs, status, code):
    base, _, _ = orchestrator
    response = getattr(httpx, method)(base + path, timeout=30, **{"headers": ADMIN, **kwargs})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
