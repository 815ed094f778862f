"""GET /v1/products (a page) and GET /v1/products/{id}/image (the thumbnail) over real HTTP handling: FastAPI in
process, a real SQLite store, Triton unreachable (neither route needs a model)."""

from __future__ import annotations

import io
import os
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from orchestrator.app import create_app
from orchestrator.domain import Product
from orchestrator.routes.products import etag_matches
from orchestrator.settings import CatalogSettings, RateLimitSettings, Settings, TritonSettings
from orchestrator.thumbnails import encode_thumbnail
from tests.conftest import free_port


@asynccontextmanager
async def api(tmp_path: Path, *, rate_limit: RateLimitSettings | None = None, admin_token: str | None = None,
              **catalog):
    """(client, store) on a fresh SQLite catalog; `catalog` overrides catalog settings (image_root, ...)."""
    settings = Settings(triton=TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", timeout_s=1, retries=0),
                        catalog=CatalogSettings(url=f"sqlite:///{tmp_path / 'catalog.db'}",
                                                index_path=tmp_path / "index", **catalog),
                        rate_limit=rate_limit or RateLimitSettings(per_client_per_minute=0), admin_token=admin_token)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client, app.state.services.store


def product(product_id: str, image: str = "https://shop.example/p.jpg", **fields) -> Product:
    return Product(product_id=product_id, name=fields.pop("name", f"Product {product_id}"), image=image, **fields)


def photo(path: Path, width: int = 800, height: int = 600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (200, 30, 30)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def jpeg_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode) == ("JPEG", "RGB")
    return image.size


# ---- GET /v1/products/{product_id}/image ----------------------------------------------------------------------


async def test_a_stored_thumbnail_is_served_as_jpeg_with_a_strong_etag_and_cache_headers(tmp_path):
    thumbnail = encode_thumbnail(np.full((600, 1000, 3), 90, np.uint8), 384, 85)
    async with api(tmp_path) as (client, store):
        await store.upsert_many([product("P1")])
        await store.put_thumbnails({"P1": thumbnail})

        response = await client.get("/v1/products/P1/image")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["etag"] == f'"{thumbnail.etag}"'
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.content == thumbnail.data
    assert jpeg_size(response.content) == (384, 230)


async def test_if_none_match_with_the_current_etag_answers_304_without_a_body(tmp_path):
    thumbnail = encode_thumbnail(np.full((40, 40, 3), 10, np.uint8), 384, 85)
    current = f'"{thumbnail.etag}"'
    async with api(tmp_path) as (client, store):
        await store.upsert_many([product("P1")])
        await store.put_thumbnails({"P1": thumbnail})

        for header in (current, f"W/{current}", f'"stale", {current}', "*"):
            revalidated = await client.get("/v1/products/P1/image", headers={"If-None-Match": header})
            assert revalidated.status_code == 304, header
            assert revalidated.content == b""
            assert revalidated.headers["etag"] == current
            assert revalidated.headers["cache-control"] == "public, max-age=300"
        changed = await client.get("/v1/products/P1/image", headers={"If-None-Match": '"stale"'})
        assert changed.status_code == 200 and changed.content == thumbnail.data


def test_etag_matching_follows_if_none_match_rules():
    assert etag_matches('"abc"', "abc") and etag_matches('W/"abc"', "abc") and etag_matches(' "x" ,"abc"', "abc")
    assert etag_matches("*", "abc")
    assert not etag_matches("abc", "abc")  # an unquoted tag is malformed
    assert not etag_matches('"abcd", "ab"', "abc")


async def test_an_unknown_product_has_no_image(tmp_path):
    async with api(tmp_path) as (client, _):
        response = await client.get("/v1/products/nope/image")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "no product 'nope'" in response.json()["error"]["message"]


@pytest.mark.parametrize("image, image_root, reason", [
    ("https://shop.example/p.jpg", True, "at a URL"),
    ("shirts/a.png", False, "no image root"),
    ("shirts/missing.png", True, "image file not found"),
])
async def test_a_product_without_a_thumbnail_that_none_can_be_made_for_is_404_saying_why(tmp_path, image,
                                                                                         image_root, reason):
    root = tmp_path / "images"
    photo(root / "shirts" / "a.png")
    async with api(tmp_path, image_root=root if image_root else None) as (client, store):
        await store.upsert_many([product("P1", image)])

        response = await client.get("/v1/products/P1/image")

        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "not_found"
        assert "has no thumbnail" in error["message"] and reason in error["message"]
        assert await store.get_thumbnail("P1") is None


async def test_a_missing_thumbnail_is_made_from_the_photo_under_the_image_root_stored_and_then_served(tmp_path):
    root = tmp_path / "images"
    relative = photo(root / "shirts" / "a.png")
    absolute = photo(root / "b.png", width=100, height=300)
    async with api(tmp_path, image_root=root, thumbnail_max_side_px=64) as (client, store):
        await store.upsert_many([product("P1", "shirts/a.png"), product("P2", str(absolute))])

        first = await client.get("/v1/products/P1/image")
        second = await client.get("/v1/products/P2/image")

        assert first.status_code == 200 and second.status_code == 200
        assert jpeg_size(first.content) == (64, 48) and jpeg_size(second.content) == (21, 64)
        stored = await store.get_thumbnail("P1")
        assert stored is not None and first.headers["etag"] == f'"{stored.etag}"'
        relative.unlink()  # from now on the stored thumbnail answers
        again = await client.get("/v1/products/P1/image")
        assert again.status_code == 200 and again.content == first.content


@pytest.mark.parametrize("image", ["../outside.png", "{outside}", "escape.png", "shirts/../../outside.png"])
async def test_a_photo_outside_the_image_root_is_never_read(tmp_path, image):
    root = tmp_path / "images"
    root.mkdir()
    outside = photo(tmp_path / "outside.png")  # a valid photo: reading it would answer 200
    os.symlink(outside, root / "escape.png")
    async with api(tmp_path, image_root=root) as (client, store):
        await store.upsert_many([product("P1", image.format(outside=outside))])

        response = await client.get("/v1/products/P1/image")

        assert response.status_code == 404
        message = response.json()["error"]["message"]
        assert "not a file under the image root" in message
        assert str(root) not in message  # the server's folders stay private
        assert await store.get_thumbnail("P1") is None


async def test_deleting_a_product_deletes_its_thumbnail(tmp_path):
    async with api(tmp_path, admin_token="an-admin-token-of-16+") as (client, store):
        await store.upsert_many([product("P1")])
        await store.put_thumbnails({"P1": encode_thumbnail(np.zeros((8, 8, 3), np.uint8), 384, 85)})

        deleted = await client.delete("/v1/products/P1", headers={"Authorization": "Bearer an-admin-token-of-16+"})

        assert deleted.status_code == 204
        assert (await client.get("/v1/products/P1/image")).status_code == 404
        assert await store.get_thumbnail("P1") is None


# ---- GET /v1/products --------------------------------------------------------------------------------------------


async def test_the_product_list_pages_by_id_with_a_cursor_and_the_total(tmp_path):
    async with api(tmp_path) as (client, store):
        await store.upsert_many([product(f"P{i}", brand="Acme", price=float(i)) for i in range(5)])

        first = (await client.get("/v1/products", params={"limit": 2})).json()
        second = (await client.get("/v1/products", params={"limit": 2, "after": first["next_after"]})).json()
        last = (await client.get("/v1/products", params={"limit": 2, "after": second["next_after"]})).json()
        everything = (await client.get("/v1/products")).json()

    assert [p["product_id"] for p in first["products"]] == ["P0", "P1"] and first["next_after"] == "P1"
    assert [p["product_id"] for p in second["products"]] == ["P2", "P3"] and second["next_after"] == "P3"
    assert [p["product_id"] for p in last["products"]] == ["P4"] and last["next_after"] is None
    assert first["total"] == second["total"] == last["total"] == 5
    assert first["products"][1] == {"product_id": "P1", "name": "Product P1", "image": "https://shop.example/p.jpg",
                                    "link": "", "brand": "Acme", "price": 1.0, "tags": [], "category": "",
                                    "tryon_ready": False, "tryon_probability": None}
    assert len(everything["products"]) == 5 and everything["next_after"] is None


async def test_the_product_list_filters_by_q_on_id_name_or_brand(tmp_path):
    async with api(tmp_path) as (client, store):
        await store.upsert_many([product("SHIRT-1", name="Oxford", brand="Acme"),
                                 product("P2", name="Linen shirt", brand="Other"),
                                 product("P3", name="Skirt", brand="ACME"),
                                 product("P4", name="Dress", brand="Other")])

        shirts = (await client.get("/v1/products", params={"q": "shirt"})).json()
        acme = (await client.get("/v1/products", params={"q": "acme", "limit": 1})).json()

    assert [p["product_id"] for p in shirts["products"]] == ["P2", "SHIRT-1"] and shirts["total"] == 2
    assert [p["product_id"] for p in acme["products"]] == ["P3"]
    assert acme["next_after"] == "P3" and acme["total"] == 2


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": "many"}, {"q": "x" * 201}])
async def test_the_product_list_refuses_out_of_range_parameters_with_422(tmp_path, params):
    async with api(tmp_path) as (client, _):
        response = await client.get("/v1/products", params=params)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


async def test_the_list_is_rate_limited_like_the_other_shopper_reads_and_thumbnails_are_not(tmp_path):
    async with api(tmp_path, rate_limit=RateLimitSettings(per_client_per_minute=1, burst=2)) as (client, _):
        statuses = [(await client.get("/v1/products")).status_code,
                     (await client.get("/v1/products")).status_code,
                     (await client.get("/v1/products")).status_code,
                     *[(await client.get("/v1/products/P1/image")).status_code for _ in range(30)]]

    assert statuses == [200, 200, 429] + [404] * 30  # a grid's worth of pictures never spends the burst


async def test_openapi_documents_the_list_and_the_image_with_its_jpeg_304_and_404(tmp_path):
    async with api(tmp_path) as (client, _):
        spec = (await client.get("/openapi.json")).json()

    listing = spec["paths"]["/v1/products"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "after", "q"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("ProductPageOut")
    image = spec["paths"]["/v1/products/{product_id}/image"]["get"]["responses"]
    assert list(image["200"]["content"]) == ["image/jpeg"]
    assert {"ETag", "Cache-Control"} <= set(image["200"]["headers"]) and "content" not in image["304"]
    assert image["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
