"""Product search: POST /v1/search (image+mask and/or text), GET /v1/search?q= (text), POST /v1/search/image."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile

from orchestrator import masks as mask_codec
from orchestrator.domain import ProductFilter
from orchestrator.errors import InvalidInput
from orchestrator.images import decode_image
from orchestrator.routes.access import GatedRoute, rate_limited
from orchestrator.routes.deps import services
from orchestrator.routes.products import product_fields
from orchestrator.schemas import ErrorBody, Filters, SearchRequest, SearchResponse
from orchestrator.services.search import SearchQuery

router = APIRouter(prefix="/v1/search", tags=["search"], dependencies=[Depends(rate_limited)], route_class=GatedRoute)
ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 429, 503)}


def to_filter(filters: Filters) -> ProductFilter | None:
    if filters.min_price is not None and filters.max_price is not None and filters.min_price > filters.max_price:
        raise InvalidInput("min_price must not exceed max_price")
    result = ProductFilter(
        categories=frozenset(c.lower() for c in filters.category) if filters.category else None,
        brands=frozenset(filters.brand) if filters.brand else None,
        min_price=filters.min_price, max_price=filters.max_price, tryon_ready=filters.tryon_ready)
    return None if result.is_empty else result


def respond(hits) -> Response:
    """`hits` as a SearchResponse body (`response_model`, which documents it), written by orjson straight from
    the products' fields: the same bytes as pydantic's, which validated 20 ProductOut models first (~65 us a search
    warm, several times that right after a model call). tests/unit/test_search_response.py holds them equal."""
    results = [{"score": float(hit.score), "product": product_fields(hit.product)} for hit in hits]
    return Response(orjson.dumps({"results": results}, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")


@router.post("", response_model=SearchResponse, responses=ERRORS,
             summary="Search with an uploaded image and its chosen mask, and/or text")
async def search(body: SearchRequest, svc=Depends(services)) -> Response:
    mask = None
    if body.mask is not None:
        if body.image_id is None:
            raise InvalidInput("a mask needs the image_id it belongs to")
        pixels = await svc.images.pixels(body.image_id)
        hw = pixels.shape[:2]
        if body.mask.rle is not None:
            mask = mask_codec.decode_rle(body.mask.rle, hw)
        elif body.mask.png is not None:
            mask = mask_codec.decode_png(body.mask.png, hw)
        else:
            raise InvalidInput("mask needs either rle or png")
    query = SearchQuery(image_id=body.image_id, mask=mask, text=body.text, image_weight=body.image_weight,
                        k=body.k or svc.settings.search.default_k, filter=to_filter(body.filters))
    return respond(await svc.search.search(query))


@router.get("", response_model=SearchResponse, responses=ERRORS, summary="Text-only search")
async def search_text(
    q: str = Query(..., min_length=1, max_length=1000, examples=["black floral dress"]),
    k: int | None = Query(None, ge=1),
    category: list[str] | None = Query(None), brand: list[str] | None = Query(None),
    min_price: float | None = Query(None, ge=0), max_price: float | None = Query(None, ge=0),
    tryon_ready: bool | None = None, svc=Depends(services),
) -> Response:
    filters = Filters(category=category, brand=brand, min_price=min_price, max_price=max_price, tryon_ready=tryon_ready)
    query = SearchQuery(text=q, k=k or svc.settings.search.default_k, filter=to_filter(filters))
    return respond(await svc.search.search(query))


@router.post("/image", response_model=SearchResponse, responses=ERRORS,
             summary="Search with any photo (multipart), optionally with text")
async def search_by_image(
    file: UploadFile = File(..., description="the photo to search with (JPEG, PNG or WebP)"),
    text: str | None = Form(None, description="text to search with too", examples=["but in black"]),
    k: int | None = Form(None, description="how many products", examples=[10]),
    image_weight: float | None = Form(None, description="weight of the photo when fusing with text (0..1)",
                                      examples=[0.7]),
    category: list[str] | None = Form(None, examples=[["top", "outer"]]),
    brand: list[str] | None = Form(None, examples=[["Snapwear"]]),
    min_price: float | None = Form(None, examples=[10000]), max_price: float | None = Form(None, examples=[59000]),
    tryon_ready: bool | None = Form(None, description="only products whose photo suits a try-on"),
    svc=Depends(services),
) -> Response:
    data = await svc.read_upload(file)
    settings = svc.settings.images
    pixels = await asyncio.to_thread(decode_image, data, settings.max_upload_bytes, settings.max_pixels)
    filters = Filters(category=category, brand=brand, min_price=min_price, max_price=max_price, tryon_ready=tryon_ready)
    query = SearchQuery(image=pixels, text=text, image_weight=image_weight,
                        k=k or svc.settings.search.default_k, filter=to_filter(filters))
    return respond(await svc.search.search(query))
