"""Every orchestrator setting, read once from SNAPFIT_* environment variables (or a .env file).

Nested groups use "__": SNAPFIT_TRITON__GRPC_URL=triton:8001, SNAPFIT_SEARCH__IMAGE_WEIGHT=0.8.
Build one `Settings()` in `create_app()` and pass it down; nothing reads the environment elsewhere.
"""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from snapfit import contract


class TritonSettings(BaseModel):
    grpc_url: str = f"localhost:{contract.TRITON_GRPC_PORT}"
    timeout_s: float = Field(30.0, gt=0, description="deadline of one inference call")
    encoder_timeout_s: float = Field(120.0, gt=0, description="deadline of a SAM encoder call (seconds on CPUs)")
    retries: int = Field(2, ge=0, description="extra attempts for transient errors (server unavailable)")
    retry_backoff_s: float = Field(0.2, ge=0, description="base of the jittered exponential backoff")
    max_in_flight_per_model: int = Field(16, ge=1, description="calls of one model this process has in Triton at "
                                                               "once; more answer 429 at once (the CPU configs of "
                                                               "the fast models keep no queue bound of their own)")
    encoder_max_in_flight: int = Field(5, ge=1, description="the same bound for the SAM encoder, whose calls take "
                                                            "seconds on CPUs: one running and four waiting")
    channel_refresh_s: float = Field(60.0, ge=0, description="reopen the unary gRPC channel this often, "
                                                             "re-resolving grpc_url (new Triton pods get calls); "
                                                             "0 = never")
    shared_memory: bool = Field(False, description="send large inputs through Triton's system shared memory; only "
                                                   "for one Triton on this host (`snapfit up` turns it on)")
    shared_memory_min_bytes: int = Field(256 * 1024, ge=1, description="inputs this large or larger use shared "
                                                                       "memory when it is on (a SAM embedding: 4 MB)")


class ImageSettings(BaseModel):
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_pixels: int = Field(50_000_000, gt=0, description="decompression-bomb guard, width x height")
    embedding_cache_mb: float = Field(256.0, ge=0, description="LRU budget for SAM image embeddings (4 MB each)")
    upload_dir: Path | None = Field(None, description="where uploaded photos are kept (content-addressed); "
                                                      "default: `uploads` beside the catalog's index folder")


class SearchSettings(BaseModel):
    default_k: int = Field(20, ge=1)
    max_k: int = Field(100, ge=1)
    image_weight: float = Field(0.7, ge=0, le=1, description="weight of the image embedding when fusing with text")
    index_factory: str = Field("Flat", description="FAISS index_factory string; Flat = exact inner product")
    background_rgb: tuple[int, int, int] = Field((255, 255, 255), description="neutral fill around a cut-out garment")


class CatalogSettings(BaseModel):
    url: str = Field("sqlite:///runs/catalog.db",
                     description="sqlite:///PATH or mongodb://... (a connection string with credentials is a secret)")
    index_path: Path = Path("runs/index")
    import_batch_size: int = Field(32, ge=1)
    tryon_threshold: float = Field(0.5, ge=0, le=1, description="P(usable) at or above which a product is try-on ready")
    fetch_timeout_s: float = Field(10.0, gt=0)
    fetch_max_bytes: int = Field(15 * 1024 * 1024, gt=0)
    allow_private_networks: bool = Field(False, description="allow image URLs on private/loopback addresses")
    image_root: Path | None = Field(None, description="local image paths must lie under this folder when set")
    sync_interval_s: float = Field(1.0, gt=0, description="how often each replica applies the store's change log "
                                                          "to its own vector index (the bound on replica lag)")
    metadata_cache_products: int = Field(50_000, ge=0, description="products whose metadata each replica keeps in "
                                                                  "memory for search results: read from the store "
                                                                  "at start, then least recently used out first "
                                                                  "(~1 KB each; 0 = ask the store every time); "
                                                                  "others' changes reach it within sync_interval_s")
    import_retry_budget_s: float = Field(600.0, ge=0, description="how long an import keeps retrying a model that "
                                                                "times out, is unavailable or has a full queue "
                                                                "(backoff 1 s doubling to 30 s) before it stops, "
                                                                "resumable (POST /v1/catalog/imports/{id}/resume)")
    import_lease_s: float = Field(30.0, ge=2, description="an import whose replica stopped renewing it this long "
                                                          "is resumed by another replica")
    import_retention_days: float = Field(30.0, gt=0, description="finished import jobs are forgotten this long "
                                                                 "after they ended")
    thumbnail_max_side_px: int = Field(384, ge=16, le=2048,
                                       description="longest side of the product thumbnails made at import (and "
                                                   "served by GET /v1/products/{id}/image); applies to "
                                                   "thumbnails made from then on")
    thumbnail_jpeg_quality: int = Field(85, ge=1, le=95, description="JPEG quality of the product thumbnails")
    thumbnail_max_age_s: int = Field(300, ge=0, description="how long browsers and proxies may reuse a product "
                                                            "thumbnail before asking again (Cache-Control max-age)")


class TryOnSettings(BaseModel):
    max_running: int = Field(1, ge=1, description="try-ons running at once (one per GPU serving ladi_vton)")
    max_queued: int = Field(4, ge=0, description="try-ons waiting beyond those; more get 429")
    default_steps: int = Field(contract.TRYON_DEFAULT_STEPS, ge=contract.TRYON_MIN_STEPS, le=contract.TRYON_MAX_STEPS)
    default_guidance: float = Field(contract.TRYON_DEFAULT_GUIDANCE, ge=contract.TRYON_MIN_GUIDANCE,
                                    le=contract.TRYON_MAX_GUIDANCE)
    default_scheduler: str = Field(contract.TRYON_DEFAULT_SCHEDULER,
                                   pattern=f"^({'|'.join(contract.TRYON_SCHEDULERS)})$")
    timeout_s: float = Field(1800.0, gt=0, description="deadline of one try-on stream in Triton")
    frame_height: int = Field(512, ge=64, description="person frame sent to the model (its aspect, 4:3 tall)")
    frame_width: int = Field(384, ge=48)
    sam_garment_region: bool = Field(True, description="prompt SAM at body points to refine the inpainting mask")
    keep_results: int = Field(64, ge=1, description="finished jobs (and their PNGs) kept for download")
    keep_unmasked: bool = Field(True, description="paste the photo back where nothing is repainted (face, hands, "
                                                  "background stay exactly as shot)")


class RateLimitSettings(BaseModel):
    per_client_per_minute: int = Field(600, ge=0, description="shopper requests (search, masks, uploads, try-on) "
                                                              "per client per minute and replica; 0 = no limit")
    burst: int = Field(60, ge=1, description="requests a client may send at once before the rate applies")
    forwarded_for_hops: int = Field(0, ge=0, le=16,
                                    description="trusted proxies in front (an ingress: 1); the client is the "
                                                "address that many from the right of X-Forwarded-For; 0: the "
                                                "peer address")
    max_clients: int = Field(100_000, ge=1, description="clients tracked at once (least recently seen dropped)")


def _default_replica_id() -> str:
    return socket.gethostname()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SNAPFIT_", env_nested_delimiter="__", env_file=".env",
                                      extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(contract.API_PORT, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes of `snapfit serve`")
    keep_alive_s: float = Field(
        75.0, gt=0, le=3600,
        description="how long an idle HTTP keep-alive connection stays open; longer than the idle timeout of the "
                    "clients and load balancers in front (60 s on common ones), so the API never closes a connection "
                    "a client is about to reuse (that client would see a dropped request)")
    replica_id: str = Field(default_factory=_default_replica_id, min_length=1,
                            description="names this replica in import leases, with the process id (k8s: the "
                                        "pod name; default: the host name)")
    admin_token: SecretStr | None = Field(None, min_length=16,
                                          description="bearer token of the catalog-changing endpoints (16+ "
                                                      "characters); unset = those endpoints refuse every request")
    server_timing: bool = Field(True, description="send each HTTP response's stages (the Triton calls, FAISS, the "
                                "catalog lookup, the orchestrator in all) in a Server-Timing header, which browsers' "
                                "developer tools and `snapfit bench` read")
    web_pages: bool = Field(True, description="serve the shopper's page at / and the catalog admin page at /admin "
                                              "(off: the API alone)")
    rate_limit: RateLimitSettings = RateLimitSettings()
    triton: TritonSettings = TritonSettings()
    images: ImageSettings = ImageSettings()
    search: SearchSettings = SearchSettings()
    catalog: CatalogSettings = CatalogSettings()
    tryon: TryOnSettings = TryOnSettings()

    def upload_folder(self) -> Path:
        """Where uploaded photos live: images.upload_dir, else `uploads` beside catalog.index_path."""
        return self.images.upload_dir or Path(self.catalog.index_path).parent / "uploads"

    @field_validator("admin_token", mode="before")
    @classmethod
    def _strip_token(cls, value):
        """A token read from a file (`kubectl create secret --from-file`) keeps its trailing newline."""
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_k_within_max(self) -> "Settings":
        if self.search.default_k > self.search.max_k:
            raise ValueError("search.default_k must not exceed search.max_k")
        return self
