"""Prometheus metrics of the orchestrator (served at /metrics). Names carry units, labels stay low-cardinality."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_SECONDS = Histogram("snapfit_http_request_duration_seconds", "HTTP request latency by route",
                            ["method", "route", "status"])
TRITON_CALL_SECONDS = Histogram("snapfit_triton_call_duration_seconds", "latency of one Triton inference call",
                                ["model"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
TRITON_ERRORS = Counter("snapfit_triton_errors_total", "Triton calls that failed, by our error code",
                        ["model", "code"])
EMBEDDING_CACHE_EVENTS = Counter("snapfit_embedding_cache_events_total", "SAM embedding cache lookups",
                                 ["result"])  # hit | miss | eviction
PRODUCT_CACHE_LOOKUPS = Counter("snapfit_product_cache_lookups_total",
                                "search hits' product metadata, found in memory or read from the store",
                                ["result"])  # hit | miss
EMBEDDING_CACHE_BYTES = Gauge("snapfit_embedding_cache_bytes", "bytes held by the SAM embedding cache")
INDEX_VECTORS = Gauge("snapfit_index_vectors", "vectors in the FAISS index")
INDEX_GENERATION = Gauge("snapfit_index_generation", "the catalog generation this replica's index has applied")
INDEX_SYNC_ERRORS = Counter("snapfit_index_sync_errors_total", "failed polls of the store's change log")
IMPORT_ROWS_PENDING = Gauge("snapfit_import_rows_pending", "rows still to import in the imports this replica runs")
AUTH_FAILURES = Counter("snapfit_admin_auth_failures_total", "admin requests refused, by reason",
                        ["reason"])  # missing | wrong | disabled
RATE_LIMITED = Counter("snapfit_rate_limited_total", "shopper requests refused by the per-client rate limit")
IMPORT_ROWS = Counter("snapfit_import_rows_total", "catalog rows processed by imports, by outcome",
                      ["outcome"])  # inserted | updated | unchanged | failed
TRYON_SECONDS = Histogram("snapfit_tryon_duration_seconds", "try-on jobs from start to result, by outcome",
                          ["outcome"], buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200))
TRYON_QUEUE = Gauge("snapfit_tryon_queue_length", "try-on jobs waiting for a free slot")
TRYON_RUNNING = Gauge("snapfit_tryon_running", "try-on jobs running now")
TRYON_STEPS_PER_SECOND = Histogram("snapfit_tryon_steps_per_second", "denoising steps per second of each try-on",
                                   buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100))
