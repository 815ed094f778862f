"""The two pages and their assets as the orchestrator serves them (FastAPI in process; Triton unreachable, which
the pages do not need to load). The pages' behaviour is tested in a real browser: tests/browser/."""

from __future__ import annotations

import io
import re

from PIL import Image

from orchestrator.web.pages import STATIC
from orchestrator.web.samples import SAMPLE_NAMES
from tests.support.inprocess_api import inprocess_api


async def test_both_pages_are_served_with_a_strict_content_security_policy(tmp_path):
    async with inprocess_api(tmp_path) as client:
        for path, title in (("/", "find and try on"), ("/admin", "catalog admin")):
            page = await client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert title in page.text
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
            assert page.headers["x-content-type-options"] == "nosniff"


async def test_every_asset_a_page_references_is_served_from_this_server(tmp_path):
    async with inprocess_api(tmp_path) as client:
        for page in ("index.html", "admin.html"):
            html = (STATIC / page).read_text()
            references = re.findall(r'(?:src|href)="(/ui/[^"]+)"', html)
            assert references, page
            for reference in references:
                asset = await client.get(reference)
                assert asset.status_code == 200, reference
            assert not re.search(r'(?:src|href)="(?:https?:)?//', html), "nothing from another host"
        for script in STATIC.glob("*.js"):
            for imported in re.findall(r'from "\./([^"]+)"', script.read_text()):
                assert (STATIC / imported).exists(), (script.name, imported)
        script = await client.get("/ui/shop.js")
        assert "javascript" in script.headers["content-type"]


async def test_sample_photos_are_jpegs_and_an_unknown_sample_is_a_404_in_our_error_body(tmp_path):
    async with inprocess_api(tmp_path) as client:
        for name in SAMPLE_NAMES:
            photo = await client.get(f"/ui/samples/{name}.jpg")
            assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(photo.content)).size == (600, 800)
            assert f'data-sample="{name}"' in (STATIC / "index.html").read_text()
        missing = await client.get("/ui/samples/nope.jpg")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_the_pages_stay_out_of_the_api_schema_and_can_be_turned_off(tmp_path):
    async with inprocess_api(tmp_path) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/" not in paths and "/admin" not in paths and not any(p.startswith("/ui") for p in paths)
    async with inprocess_api(tmp_path, web_pages=False) as client:
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/ui/shop.js")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
