"""GET, PATCH and DELETE /v1/products/{product_id}."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from orchestrator.domain import Product
from orchestrator.errors import NotFound
from orchestrator.routes.access import GatedRoute, rate_limited, require_admin
from orchestrator.routes.deps import services
from orchestrator.schemas import ErrorBody, ProductOut, ProductUpdate

router = APIRouter(prefix="/v1/products", tags=["catalog"], route_class=GatedRoute)
ERRORS = {code: {"model": ErrorBody} for code in (404, 422, 429, 503)}
ADMIN_ERRORS = {code: {"model": ErrorBody} for code in (401, 403, 404, 422, 503)}


def product_out(product: Product) -> ProductOut:
    return ProductOut(product_id=product.product_id, name=product.name, image=product.image, link=product.link,
                      brand=product.brand, price=product.price, tags=list(product.tags), category=product.category,
                      tryon_ready=product.tryon_ready, tryon_probability=product.tryon_probability)


@router.get("/{product_id}", response_model=ProductOut, responses=ERRORS, summary="One product's metadata",
            dependencies=[Depends(rate_limited)])
async def get_product(product_id: str, svc=Depends(services)) -> ProductOut:
    return product_out(await svc.products.get(product_id))


@router.patch("/{product_id}", response_model=ProductOut, responses=ADMIN_ERRORS,
              dependencies=[Depends(require_admin)],
              summary="Update metadata (admin; this replica's search sees it at once, every replica within "
                      "the sync interval)")
async def update_product(product_id: str, body: ProductUpdate, svc=Depends(services)) -> ProductOut:
    changes = body.model_dump(exclude_unset=True)
    product = await svc.products.update(product_id, changes)
    return product_out(product)


@router.delete("/{product_id}", status_code=204, responses=ADMIN_ERRORS, dependencies=[Depends(require_admin)],
               summary="Delete a product (admin); it never comes back in search")
async def delete_product(product_id: str, svc=Depends(services)) -> Response:
    if not await svc.products.delete(product_id):
        raise NotFound(f"no product {product_id!r}")
    return Response(status_code=204)
