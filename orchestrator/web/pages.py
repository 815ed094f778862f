"""Routes of the two pages and their assets; none of them appears in the OpenAPI schema (they are not the API)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from orchestrator.errors import NotFound
from orchestrator.web.samples import SAMPLE_NAMES, sample_jpeg

STATIC = Path(__file__).with_name("static")
# the pages load only their own scripts and styles; photos shown come from the API or the browser (blob:)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; "
                               "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def shop_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


@router.get("/admin")
async def admin_page() -> FileResponse:
    return FileResponse(STATIC / "admin.html", headers=PAGE_HEADERS)


@router.get("/ui/samples/{name}.jpg")
async def sample_photo(name: str) -> Response:
    if name not in SAMPLE_NAMES:
        raise NotFound(f"no sample photo {name!r}; there are {', '.join(SAMPLE_NAMES)}")
    return Response(sample_jpeg(name), media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


def install(app: FastAPI) -> None:
    """Adds the pages, the sample photos and the static assets (under /ui) to `app`."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
