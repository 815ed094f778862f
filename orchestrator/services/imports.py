"""CSV imports: rows (orchestrator/ingest/) -> images -> try-on classifier + CLIP (batched) -> ProductService.

`ImportPipeline` runs one import; `ImportJobs` starts them in the background and keeps their progress.

Idempotent: a row's `source_hash` is the hash of its normalised fields plus the sha256 of its image bytes;
rows whose stored product has the same hash are counted unchanged and never re-embedded, so importing the
same CSV twice changes nothing, and re-running an interrupted import converges to the uninterrupted state.
Batches are pipelined: the next batch's images load while the current batch is in Triton.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from orchestrator.errors import NotFound, SnapfitError
from orchestrator.images import content_hash, decode_image
from orchestrator.ingest import CatalogRow, ColumnMapping, ImageLoader, RowError, parse_catalog_csv
from orchestrator.metrics import IMPORT_ROWS
from orchestrator.services.dependencies import CatalogModels, ProductWriter
from orchestrator.settings import CatalogSettings

log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 1000
PIPELINE_DEPTH = 2


@dataclass
class ImportJob:
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"] = "queued"
    total_rows: int = 0
    processed_rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0

    def fail_row(self, error: RowError) -> None:
        self.failed += 1
        IMPORT_ROWS.labels(outcome="failed").inc()
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    @property
    def rows_per_second(self) -> float:
        end = self.finished_at or time.time()
        return self.processed_rows / max(end - self.started_at, 1e-9) if self.started_at else 0.0


@dataclass
class _Prepared:
    """One batch with its images loaded and decoded; rows whose content did not change are already counted."""

    rows: list[CatalogRow]
    pixels: list[np.ndarray]
    source_hashes: list[str]


class ImportPipeline:
    """Imports rows in pipelined batches into `products`, counting every row's outcome on its job."""

    def __init__(self, products: ProductWriter, models: CatalogModels, batch_size: int, tryon_threshold: float,
                 max_image_pixels: int, fetch_max_bytes: int):
        self.products = products
        self.models = models
        self.batch_size = batch_size
        self.tryon_threshold = tryon_threshold
        self.max_image_pixels = max_image_pixels
        self.fetch_max_bytes = fetch_max_bytes
        self.jobs: dict[str, ImportJob] = {}

    def new_job(self, rows: Sequence[CatalogRow], parse_errors: Sequence[RowError]) -> ImportJob:
        job = ImportJob(job_id=uuid.uuid4().hex, total_rows=len(rows) + len(parse_errors))
        for error in parse_errors:
            job.fail_row(error)
        job.processed_rows = len(parse_errors)
        self.jobs[job.job_id] = job
        return job

    async def run(self, job: ImportJob, rows: Sequence[CatalogRow], loader: ImageLoader,
                  on_progress: Callable[[ImportJob], None] = lambda job: None) -> ImportJob:
        """Imports `rows` into the catalog, updating `job` as batches finish; never raises for bad rows."""
        job.status, job.started_at = "running", time.time()
        queue: asyncio.Queue[_Prepared | None] = asyncio.Queue(maxsize=PIPELINE_DEPTH)
        producer = asyncio.create_task(self._produce(job, rows, loader, queue))
        try:
            while (prepared := await queue.get()) is not None:
                await self._embed_and_store(job, prepared)
                on_progress(job)
            await producer
            await self.products.save()
            job.status = "succeeded"
        except SnapfitError as error:
            job.status, job.message = "failed", error.message
            log.warning("import %s stopped: %s", job.job_id, error.message)
        finally:
            producer.cancel()
            job.finished_at = time.time()
            on_progress(job)
        return job

    async def _produce(self, job: ImportJob, rows: Sequence[CatalogRow], loader: ImageLoader,
                       queue: asyncio.Queue) -> None:
        for start in range(0, len(rows), self.batch_size):
            await queue.put(await self._prepare(job, list(rows[start:start + self.batch_size]), loader))
        await queue.put(None)

    async def _prepare(self, job: ImportJob, rows: list[CatalogRow], loader: ImageLoader) -> _Prepared:
        fetched = await asyncio.gather(*(loader.load(row.image) for row in rows), return_exceptions=True)
        existing = await self.products.get_many([row.product_id for row in rows])
        prepared = _Prepared([], [], [])
        for row, data in zip(rows, fetched):
            if isinstance(data, BaseException):
                self._row_failed(job, row, data)
                continue
            source_hash = hashlib.sha256(f"{row.row_hash}:{content_hash(data)}".encode()).hexdigest()
            if row.product_id in existing and existing[row.product_id].source_hash == source_hash:
                job.unchanged += 1
                job.processed_rows += 1
                IMPORT_ROWS.labels(outcome="unchanged").inc()
                continue
            try:
                pixels = await asyncio.to_thread(decode_image, data, self.fetch_max_bytes, self.max_image_pixels)
            except SnapfitError as error:
                self._row_failed(job, row, error)
                continue
            prepared.rows.append(row)
            prepared.pixels.append(pixels)
            prepared.source_hashes.append(source_hash)
        return prepared

    async def _embed_and_store(self, job: ImportJob, batch: _Prepared) -> None:
        if not batch.rows:
            return
        probabilities, embeddings = await asyncio.gather(self.models.tryon_probability(batch.pixels),
                                                         self.models.clip_image(batch.pixels))
        products = []
        for row, source_hash, probability, embedding in zip(batch.rows, batch.source_hashes, probabilities,
                                                            embeddings):
            product = row.to_product()
            product.source_hash = source_hash
            product.tryon_probability = float(probability)
            product.tryon_ready = bool(probability >= self.tryon_threshold)
            product.embedding = np.ascontiguousarray(embedding, dtype=np.float32)
            products.append(product)
        result = await self.products.add(products)
        job.inserted += result.inserted
        job.updated += result.updated
        job.unchanged += result.unchanged
        job.processed_rows += len(products)
        for outcome, count in (("inserted", result.inserted), ("updated", result.updated),
                               ("unchanged", result.unchanged)):
            IMPORT_ROWS.labels(outcome=outcome).inc(count)

    @staticmethod
    def _row_failed(job: ImportJob, row: CatalogRow, error: BaseException) -> None:
        message = error.message if isinstance(error, SnapfitError) else f"{type(error).__name__}: {error}"
        job.fail_row(RowError(line=row.line, product_id=row.product_id, message=f"image {row.image!r}: {message}"))
        job.processed_rows += 1


class ImportJobs:
    """Starts imports in the background and keeps their jobs for progress queries."""

    def __init__(self, pipeline: ImportPipeline, settings: CatalogSettings):
        self.pipeline = pipeline
        self.settings = settings
        self._tasks: set[asyncio.Task] = set()

    async def start(self, csv_data: bytes, mapping: ColumnMapping | None = None,
                    base_dir: Path | None = None) -> ImportJob:
        """Parses the CSV now (a broken header is a 400 right away) and imports its rows in the background.

        Local image paths are allowed only under `catalog.image_root`; relative ones resolve against base_dir.
        """
        rows, errors = await asyncio.to_thread(parse_catalog_csv, csv_data, mapping, base_dir=base_dir)
        job = self.pipeline.new_job(rows, errors)
        task = asyncio.create_task(self._run(job, rows))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: ImportJob, rows) -> None:
        root = self.settings.image_root
        async with ImageLoader(max_bytes=self.settings.fetch_max_bytes, timeout_s=self.settings.fetch_timeout_s,
                               allow_local_files=root is not None, allowed_root=root,
                               allow_private_networks=self.settings.allow_private_networks) as loader:
            await self.pipeline.run(job, rows, loader)

    def get(self, job_id: str) -> ImportJob:
        if job_id not in self.pipeline.jobs:
            raise NotFound(f"no import job {job_id!r}")
        return self.pipeline.jobs[job_id]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
