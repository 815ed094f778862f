"""With Triton down the orchestrator still answers: 503 with Retry-After and our error body, never a 500."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from orchestrator.app import create_app
from orchestrator.domain import Product
from orchestrator.settings import CatalogSettings, Settings, TritonSettings
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(tmp_path):
    settings = Settings(triton=TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", timeout_s=2, retries=1,
                                              retry_backoff_s=0.01),
                        catalog=CatalogSettings(url=f"sqlite:///{tmp_path / 'catalog.db'}",
                                                index_path=tmp_path / "index"))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield http


async def test_text_search_with_triton_down_is_503_with_retry_after(client):
    response = await client.get("/v1/search", params={"q": "black dress"})
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["error"]["code"] == "model_unavailable"


async def test_readiness_reports_triton_down_but_liveness_stays_ok(client):
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["store"] is True
    assert not any(v for k, v in ready.json()["checks"].items() if k.startswith("triton:"))
    assert (await client.get("/healthz")).status_code == 200


async def test_metrics_count_the_failed_triton_calls(client):
    await client.get("/v1/search", params={"q": "shirt"})
    text = (await client.get("/metrics")).text
    assert 'snapfit_triton_errors_total{code="model_unavailable",model="clip_text_embed"}' in text


@pytest.fixture
async def http_with_a_product(tmp_path):
    """The API (Triton down) with one try-on-ready product, P1, whose photo is on disk."""
    Image.fromarray(np.full((300, 300, 3), 200, np.uint8)).save(tmp_path / "hoodie.png")
    settings = Settings(triton=TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", timeout_s=2, retries=0),
                        catalog=CatalogSettings(url=f"sqlite:///{tmp_path / 'catalog.db'}",
                                                index_path=tmp_path / "index", image_root=tmp_path))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.services.products.add([Product(
            product_id="P1", name="Hoodie", image=str(tmp_path / "hoodie.png"), category="top", tryon_ready=True,
            tryon_probability=0.9, embedding=np.full(512, 512 ** -0.5, np.float32), source_hash="x")])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield http


def encoded(image: Image.Image, format: str) -> bytes:  # noqa: A002 - PIL's name
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


async def test_a_tryon_with_triton_down_fails_its_job_with_a_clear_error(http_with_a_product):
    http = http_with_a_product
    started = await http.post("/v1/tryon", data={"product_id": "P1"},
                              files={"file": ("me.jpg", encoded(Image.fromarray(astronaut()), "JPEG"), "image/jpeg")})
    assert started.status_code == 202, started.text
    for _ in range(200):
        job = (await http.get(f"/v1/tryon/{started.json()['job_id']}")).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "failed" and job["error"]["code"] == "model_unavailable", job
    assert job["error"]["message"]


@pytest.mark.parametrize("side", [8, 9000])
async def test_a_tryon_photo_too_small_or_too_large_for_pose_detection_is_a_422(http_with_a_product, side):
    """Regression: InvalidPhoto from person preprocessing escaped as a NameError (500)."""
    # 9000 x 300: within the uploads' 32:1 aspect bound, past the pose detector's largest side
    photo = encoded(Image.new("RGB", (side, 300 if side > 300 else side), (120, 90, 60)), "PNG")
    response = await http_with_a_product.post("/v1/tryon", data={"product_id": "P1"},
                                              files={"file": ("me.png", photo, "image/png")})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert "cannot be prepared for try-on" in response.json()["error"]["message"]
