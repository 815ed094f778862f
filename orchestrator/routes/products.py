"""The catalog's products: GET /v1/products (a page, for browsing), GET, PATCH and DELETE /v1/products/{product_id},
and GET /v1/products/{product_id}/image (the photo's thumbnail, with HTTP caching)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Response

from orchestrator.domain import Product
from orchestrator.errors import NotFound
from orchestrator.routes.access import GatedRoute, rate_limited, require_admin
from orchestrator.routes.deps import services
from orchestrator.routes.params import ProductId
from orchestrator.schemas import ErrorBody, ProductOut, ProductPageOut, ProductUpdate

router = APIRouter(prefix="/v1/products", tags=["catalog"], route_class=GatedRoute)
ERRORS = {code: {"model": ErrorBody} for code in (404, 422, 429, 503)}
ADMIN_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 503)}
_CACHE_HEADERS = {
    "ETag": {"description": "strong validator: a hash of the JPEG's bytes, quoted", "schema": {"type": "string"}},
    "Cache-Control": {"description": "public, max-age=<catalog.thumbnail_max_age_s> (300)",
                      "schema": {"type": "string"}},
}
IMAGE_RESPONSES = {
    200: {"description": "The thumbnail: RGB JPEG, longest side at most catalog.thumbnail_max_side_px (384)",
          "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}, "headers": _CACHE_HEADERS},
    304: {"description": "Not Modified: If-None-Match names the current ETag (no body)", "headers": _CACHE_HEADERS},
    404: {"model": ErrorBody, "description": "Unknown product, or no thumbnail stored and none can be made from a "
                                            "local photo under the image root"},
    **{code: {"model": ErrorBody} for code in (422, 503)},
}


def product_fields(product: Product) -> dict:
    """The fields of a product's ProductOut, as pydantic would write them but unvalidated (for bodies written
    without pydantic; numbers as floats, as ProductOut declares them)."""
    return {"product_id": product.product_id, "name": product.name, "image": product.image, "link": product.link,
            "brand": product.brand, "price": _float_or_none(product.price), "tags": list(product.tags),
            "category": product.category, "tryon_ready": bool(product.tryon_ready),
            "tryon_probability": _float_or_none(product.tryon_probability)}


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def product_out(product: Product) -> ProductOut:
    return ProductOut(**product_fields(product))


@router.get("", response_model=ProductPageOut, responses=ERRORS, dependencies=[Depends(rate_limited)],
            summary="A page of products in product id order, optionally matching a search string")
async def list_products(
    limit: int = Query(50, ge=1, le=200, description="products on this page"),
    after: str = Query("", max_length=1000, description="the previous page's `next_after`: products with a greater "
                                                        "id; empty for the first page"),
    q: str | None = Query(None, max_length=200, description="case-insensitive substring of the product id, name or "
                                                            "brand (SQLite folds ASCII letters only)"),
    svc=Depends(services),
) -> ProductPageOut:
    page = await svc.products.page(after, limit, q)
    return ProductPageOut(products=[product_out(p) for p in page.products], next_after=page.next_after,
                          total=page.total)


@router.get("/{product_id}", response_model=ProductOut, responses=ERRORS, summary="One product's metadata",
            dependencies=[Depends(rate_limited)])
async def get_product(product_id: ProductId, svc=Depends(services)) -> ProductOut:
    return product_out(await svc.products.get(product_id))


# not rate-limited: a results grid or a page of the admin table loads dozens at once (each a bounded store read
# that browsers cache and revalidate), which would spend a shopper's whole burst on pictures
@router.get("/{product_id}/image", response_class=Response, responses=IMAGE_RESPONSES,
            summary="The product photo's thumbnail (JPEG; ETag, 304)")
async def get_product_image(product_id: ProductId, if_none_match: str | None = Header(None),
                            svc=Depends(services)) -> Response:
    thumbnail = await svc.products.thumbnail(product_id)
    headers = {"ETag": f'"{thumbnail.etag}"',
               "Cache-Control": f"public, max-age={svc.settings.catalog.thumbnail_max_age_s}"}
    if if_none_match is not None and etag_matches(if_none_match, thumbnail.etag):
        return Response(status_code=304, headers=headers)
    return Response(thumbnail.data, media_type="image/jpeg", headers=headers)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (unquoted) or is `*`. Weak comparison, as RFC 9110 asks of
    If-None-Match: a `W/` prefix is ignored."""
    candidates = [candidate.strip() for candidate in if_none_match.split(",")]
    return any(candidate == "*" or candidate.removeprefix("W/") == f'"{etag}"' for candidate in candidates)


@router.patch("/{product_id}", response_model=ProductOut, responses=ADMIN_ERRORS,
              dependencies=[Depends(require_admin)],
              summary="Update metadata (admin; this replica's search sees it at once, every replica within "
                      "the sync interval)")
async def update_product(product_id: ProductId, body: ProductUpdate, svc=Depends(services)) -> ProductOut:
    changes = body.model_dump(exclude_unset=True)
    product = await svc.products.update(product_id, changes)
    return product_out(product)


@router.delete("/{product_id}", status_code=204, responses=ADMIN_ERRORS, dependencies=[Depends(require_admin)],
               summary="Delete a product (admin); it never comes back in search")
async def delete_product(product_id: ProductId, svc=Depends(services)) -> Response:
    if not await svc.products.delete(product_id):
        raise NotFound(f"no product {product_id!r}")
    return Response(status_code=204)
