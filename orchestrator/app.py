"""create_app(settings) -> FastAPI. The lifespan builds the Triton client, the store, the index and the services;
the one exception handler here is the only place that turns our errors into HTTP."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator import timing
from orchestrator.clients.models import ModelGateway
from orchestrator.clients.person import MediapipePersonPreprocessor
from orchestrator.clients.triton import TritonClient
from orchestrator.domain import Product
from orchestrator.errors import (
    BadRequest,
    ModelUnavailable,
    PayloadTooLarge,
    SnapfitError,
    StoreUnavailable,
    Unauthorized,
)
from orchestrator.index import FaissIndex
from orchestrator.metrics import REQUEST_SECONDS
from orchestrator.rate_limit import ClientRateLimiter
from orchestrator.routes.access import BODY_OVERHEAD_BYTES
from orchestrator.services.embedding_cache import EmbeddingCache
from orchestrator.services.images import UploadedImages
from orchestrator.services.imports import ImportJobs, ImportPipeline
from orchestrator.services.patient_calls import RetryPolicy
from orchestrator.services.products import ProductService
from orchestrator.services.search import SearchService
from orchestrator.services.segment import SegmentService
from orchestrator.services.tryon import TryOnService
from orchestrator.settings import Settings
from orchestrator.stores.catalog_store import CatalogStore
from orchestrator.stores.factory import StoreOpener, open_catalog_store
from snapfit import contract

log = logging.getLogger(__name__)
UPLOAD_CHUNK_BYTES = 1024 * 1024
# the try-on model failing must not take search out of the Service: its requests answer 503 on their own
READINESS_OPTIONAL = frozenset({f"triton:{contract.LADI_VTON}"})


@dataclass
class Services:
    """Everything the routes reach through `routes.deps.services`, built once by the lifespan."""

    settings: Settings
    triton: TritonClient
    models: ModelGateway
    images: UploadedImages
    segment: SegmentService
    search: SearchService
    store: CatalogStore
    index: FaissIndex
    products: ProductService
    imports: ImportJobs
    tryon: TryOnService
    rate_limiter: ClientRateLimiter

    async def read_upload(self, file: UploadFile) -> bytes:
        """The upload's bytes; PayloadTooLarge as soon as it passes the limit (never buffers more)."""
        limit = self.settings.images.max_upload_bytes
        chunks, size = [], 0
        while chunk := await file.read(UPLOAD_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def readiness(self) -> dict[str, bool]:
        """Every check by name: each served Triton model, the store, the index (READINESS_OPTIONAL ones are
        reported but do not make the replica unready)."""
        checks = {f"triton:{m}": ok for m, ok in (await self.triton.models_ready(contract.SERVED_MODELS)).items()}
        try:
            await self.store.ping()
            checks["store"] = True
        except StoreUnavailable:
            checks["store"] = False
        checks["index"] = self.products.index_loaded
        return checks

    @staticmethod
    def ready(checks: dict[str, bool]) -> bool:
        """Whether `readiness()`'s checks make this replica ready (every one but READINESS_OPTIONAL)."""
        return all(ok for name, ok in checks.items() if name not in READINESS_OPTIONAL)


async def build_services(settings: Settings, open_store: StoreOpener = open_catalog_store) -> Services:
    """Connects to Triton and the store, and loads (or rebuilds) the vector index.

    open_store: the catalog store for a URL; tests pass one that also knows in-process stand-ins.
    """
    triton = TritonClient(settings.triton)
    models = ModelGateway(triton)
    cache = EmbeddingCache(int(settings.images.embedding_cache_mb * 1024 * 1024))
    images = UploadedImages(settings.upload_folder(), settings.images, cache, models)
    store = await open_store(settings.catalog.url)
    products = await ProductService.open(store, settings, await _embedding_dim(models))
    products.follow(settings.catalog.sync_interval_s)
    products.preload_metadata()
    pipeline = ImportPipeline(products, models, settings.catalog.import_batch_size, settings.catalog.tryon_threshold,
                              settings.images.max_pixels, settings.catalog.fetch_max_bytes,
                              model_deadline_s=settings.triton.timeout_s,
                              retry=RetryPolicy(budget_s=settings.catalog.import_retry_budget_s))
    tryon = TryOnService(models, store, MediapipePersonPreprocessor(), _garment_loader(settings), settings.tryon)
    imports = ImportJobs(pipeline, store, settings.catalog, owner=f"{settings.replica_id}/{os.getpid()}")
    imports.watch()
    limits = settings.rate_limit
    return Services(settings=settings, triton=triton, models=models, images=images,
                    segment=SegmentService(images, models),
                    search=SearchService(images, models, products.index, products.metadata, settings.search),
                    store=store, index=products.index, products=products,
                    imports=imports, tryon=tryon,
                    rate_limiter=ClientRateLimiter(limits.per_client_per_minute, limits.burst, limits.max_clients))


async def _embedding_dim(models: ModelGateway) -> int | None:
    """The served clip_image's output width; None when Triton cannot be asked yet (the orchestrator starts
    without it and answers 503 until it is up; the index then takes the catalog's own width)."""
    try:
        return await models.embedding_dim()
    except ModelUnavailable as error:
        log.warning("cannot read clip_image's embedding size from Triton (%s); the vector index takes the "
                    "catalog's own width", error.message)
        return None


def _garment_loader(settings: Settings):
    """async (Product) -> uint8 [H, W, 3]: the product photo, read under the same rules as an import."""
    from orchestrator.images import decode_image
    from orchestrator.ingest import ImageLoader

    catalog = settings.catalog

    async def load(product: Product) -> np.ndarray:
        root = catalog.image_root
        async with ImageLoader(max_bytes=catalog.fetch_max_bytes, timeout_s=catalog.fetch_timeout_s,
                               allow_local_files=root is not None, allowed_root=root,
                               allow_private_networks=catalog.allow_private_networks) as loader:
            try:
                data = await loader.load(product.image)
            except SnapfitError:
                raise
            except Exception as error:  # noqa: BLE001 - fetch failures of a stored product's photo
                raise BadRequest(f"the photo of product {product.product_id} cannot be loaded: {error}") from None
        return await asyncio.to_thread(decode_image, data, catalog.fetch_max_bytes, settings.images.max_pixels)

    return load


def create_app(settings: Settings | None = None, open_store: StoreOpener = open_catalog_store) -> FastAPI:
    """The HTTP API on `settings` (default: from SNAPFIT_* variables); `open_store` as for build_services."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.services = await build_services(settings, open_store)
        try:
            yield
        finally:
            services = app.state.services
            await services.imports.close()
            await services.tryon.close()
            await services.products.close()
            await services.store.close()
            await services.triton.close()

    app = FastAPI(title="snapfit", version="0.1.0", lifespan=lifespan,
                  description="Segment garments in a photo, find matching products, manage the catalog.")
    _install_error_handlers(app)
    app.add_middleware(_DeclaredSizeCheck, limit=settings.images.max_upload_bytes + BODY_OVERHEAD_BYTES)
    _install_request_metrics(app, settings.server_timing)
    from orchestrator.routes import health, images, imports, products, search, tryon

    # a body over the largest upload (plus its form framing) is refused with 413 as soon as its Content-Length
    # (_DeclaredSizeCheck) or a chunked body's size so far (FastAPI's per-route limit) passes it: nothing larger
    # is ever spooled to disk
    body_limit = settings.images.max_upload_bytes + BODY_OVERHEAD_BYTES
    for module in (health, images, search, products, imports, tryon):
        app.include_router(module.router, max_body_size=body_limit)
    if settings.web_pages:
        from orchestrator import web

        web.install(app)
    _install_openapi_links(app)
    return app


def _install_openapi_links(app: FastAPI) -> None:
    """The generated OpenAPI document, with the links between operations (orchestrator/openapi_links.py)."""
    from fastapi.openapi.utils import get_openapi

    from orchestrator.openapi_links import add_links

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(get_openapi(title=app.title, version=app.version,
                                                       description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi


def error_response(error: SnapfitError) -> JSONResponse:
    """The HTTP response for one of our errors: its status and code, Retry-After when it has one, a Bearer
    challenge for Unauthorized."""
    challenge = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
    return _error_response(error.status, error.code, error.message, error.retry_after_s, challenge)


def _error_response(status: int, code: str, message: str, retry_after_s: float | None = None,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after_s:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers or None)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SnapfitError)
    async def snapfit_error(request: Request, error: SnapfitError) -> JSONResponse:
        if error.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.url.path, error.code, error.message)
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        return _error_response(422, "invalid_input", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        return _error_response(error.status_code, codes.get(error.status_code, "bad_request"), str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(500, "internal", "internal error; see the orchestrator's log")


class _DeclaredSizeCheck:
    """ASGI middleware: a declared Content-Length over `limit` gets our 413 body at once (FastAPI's per-route
    limiter would answer it in plain text; it still cuts off chunked bodies, through our handler)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                error = PayloadTooLarge(f"the request body is larger than {self.limit} bytes")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _install_request_metrics(app: FastAPI, server_timing: bool) -> None:
    app.add_middleware(_RequestMetrics, server_timing=server_timing)


class _RequestMetrics:
    """ASGI middleware: each HTTP request's duration by method, route template and status (plain ASGI: Starlette's
    BaseHTTPMiddleware costs about a millisecond per request, a tenth of a cached text search), and with
    `server_timing` its stages in a Server-Timing response header (orchestrator/timing.py)."""

    def __init__(self, app, server_timing: bool = True):
        self.app = app
        self.server_timing = server_timing

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]
        stages = timing.start_request() if self.server_timing else None

        async def send_and_note_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if stages is not None:
                    value = timing.header_value(stages, time.perf_counter() - started)
                    message = {**message, "headers": [*message.get("headers", ()), (timing.HEADER, value)]}
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:  # the router put the matched route into this same scope
            route = scope.get("route")
            REQUEST_SECONDS.labels(method=scope["method"], route=getattr(route, "path", "unmatched"),
                                   status=str(status[0])).observe(time.perf_counter() - started)
