"""CSV imports: rows (orchestrator/ingest/) -> images -> try-on classifier + CLIP (batched) -> ProductService.

`ImportPipeline` runs one import; `ImportJobs` starts them in the background and keeps their progress in the
store, so every replica answers for every job.

Leases: the replica running a job renews its lease (saving its progress) every lease/3 seconds. Each replica
also looks for jobs whose lease ran out (their replica died or lost the store) and resumes them: it re-reads
the job's CSV from the store and continues after the last batch the job's progress counts (`next_row`). Rows of
the batch in flight when a replica died are imported again and, already stored, count as unchanged.

Idempotent: a row's `source_hash` is the hash of its normalised fields plus the sha256 of its image bytes;
rows whose stored product has the same hash are counted unchanged and never re-embedded, so importing the
same CSV twice changes nothing, and re-running an interrupted import converges to the uninterrupted state.
The hash does not know the models, so after serving another CLIP or classifier an import with `reembed` embeds
and classifies every row again (rows whose result is the same still count unchanged).
Batches are pipelined: the next batch's images load while the current batch is in Triton.

Thumbnails: each changed row's photo, once decoded for the models, is also shrunk into the product's thumbnail
(stored after the product). An unchanged row whose product has none (imported before thumbnails existed, or an
import stopped between the two writes) is decoded for its thumbnail alone: it still counts unchanged and is not
embedded again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from orchestrator.domain import Product, Thumbnail
from orchestrator.errors import Conflict, NotFound, SnapfitError
from orchestrator.images import content_hash, decode_image
from orchestrator.ingest import CatalogRow, ColumnMapping, ImageLoader, RowError, parse_catalog_csv
from orchestrator.metrics import IMPORT_ROWS, IMPORT_ROWS_PENDING
from orchestrator.services.dependencies import CatalogModels, ImportJobStore, ProductWriter
from orchestrator.services.patient_calls import ChunkSizer, RetryPolicy, call_patiently
from orchestrator.settings import CatalogSettings
from orchestrator.stores.catalog_store import ImportRecord, UnresumableImport, UpsertResult

log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 1000
PRUNE_EVERY_S = 3600.0  # how often a replica deletes import jobs past their retention
PIPELINE_DEPTH = 2


@dataclass
class ImportJob:
    """One import's progress. next_row: the rows (after parsing) whose outcome is counted, from the first."""

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
    next_row: int = 0
    resumed: int = 0
    # embed every row again, also those whose source is unchanged (the served CLIP or classifier changed)
    reembed: bool = False

    def to_state(self) -> dict[str, Any]:
        """JSON-able progress for the store (everything but job_id and status)."""
        state = {name: getattr(self, name) for name in _COUNTERS}
        state["errors"] = [asdict(error) for error in self.errors]
        return state

    @classmethod
    def from_state(cls, job_id: str, status: str, state: dict[str, Any]) -> ImportJob:
        job = cls(job_id=job_id, status=status, **{name: state[name] for name in _COUNTERS if name in state})
        job.errors = [RowError(**error) for error in state.get("errors", [])]
        return job

    def fail_row(self, error: RowError) -> None:
        self.failed += 1
        IMPORT_ROWS.labels(outcome="failed").inc()
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    @property
    def rows_per_second(self) -> float:
        end = self.finished_at or time.time()
        return self.processed_rows / max(end - self.started_at, 1e-9) if self.started_at else 0.0


# everything of a job's progress but its id, status and errors (those are stored on their own or encoded apart)
_COUNTERS = tuple(f.name for f in fields(ImportJob) if f.name not in ("job_id", "status", "errors"))


@dataclass
class _Prepared:
    """One batch (rows[start:end]) with its images loaded and decoded, and the outcomes already known
    (unchanged rows, failed ones), counted on the job only when the batch is stored, in order.
    thumbnails: by product id, of the changed rows and of unchanged rows whose product has none yet."""

    end: int
    rows: list[CatalogRow] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)
    source_hashes: list[str] = field(default_factory=list)
    unchanged: int = 0
    failures: list[RowError] = field(default_factory=list)
    thumbnails: dict[str, Thumbnail] = field(default_factory=dict)


class ImportPipeline:
    """Imports rows in pipelined batches into `products`, counting every row's outcome on its job."""

    def __init__(self, products: ProductWriter, models: CatalogModels, batch_size: int, tryon_threshold: float,
                 max_image_pixels: int, fetch_max_bytes: int, model_deadline_s: float = 30.0,
                 retry: RetryPolicy = RetryPolicy()):
        self.products = products
        self.models = models
        self.batch_size = batch_size
        self.retry = retry
        # per model, shared by every import this process runs: chunks sized to what Triton finishes in time
        self.chunks = {name: ChunkSizer(batch_size, model_deadline_s) for name in ("tryon_classifier", "clip_image")}
        self.tryon_threshold = tryon_threshold
        self.max_image_pixels = max_image_pixels
        self.fetch_max_bytes = fetch_max_bytes

    def new_job(self, rows: Sequence[CatalogRow], parse_errors: Sequence[RowError]) -> ImportJob:
        job = ImportJob(job_id=uuid.uuid4().hex, total_rows=len(rows) + len(parse_errors))
        for error in parse_errors:
            job.fail_row(error)
        job.processed_rows = len(parse_errors)
        return job

    async def run(self, job: ImportJob, rows: Sequence[CatalogRow], loader: ImageLoader) -> ImportJob:
        """Imports rows[job.next_row:] into the catalog, updating `job` as batches finish; never raises for bad
        rows. A resumed job continues its counts."""
        job.status = "running"
        job.started_at = job.started_at or time.time()
        queue: asyncio.Queue[_Prepared | None] = asyncio.Queue(maxsize=PIPELINE_DEPTH)
        producer = asyncio.create_task(self._produce(rows, job.next_row, loader, queue, job.reembed))
        try:
            while (prepared := await queue.get()) is not None:
                await self._embed_and_store(job, prepared)
            await producer
            await self.products.save()
            job.status = "succeeded"
        except SnapfitError as error:  # a model past its retry budget, a store that refuses writes (disk full)
            job.status = "failed"
            job.message = (f"{error.message}; the import stopped after row {job.next_row} of {job.total_rows} and "
                           f"keeps the rows before it: resume it with POST /v1/catalog/imports/{job.job_id}/resume")
            log.warning("import %s stopped: %s", job.job_id, error.message)
        except Exception as error:  # noqa: BLE001 - a bug must end the job, not leave it running forever
            job.status, job.message = "failed", f"internal error: {type(error).__name__}: {error}"
            log.exception("import %s failed", job.job_id)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            job.finished_at = time.time()
        return job

    async def _produce(self, rows: Sequence[CatalogRow], first: int, loader: ImageLoader,
                       queue: asyncio.Queue, reembed: bool) -> None:
        for start in range(first, len(rows), self.batch_size):
            batch = list(rows[start:start + self.batch_size])
            await queue.put(await self._prepare(batch, start + len(batch), loader, reembed))
        await queue.put(None)

    async def _prepare(self, rows: list[CatalogRow], end: int, loader: ImageLoader, reembed: bool) -> _Prepared:
        fetched = await asyncio.gather(*(loader.load(row.image) for row in rows), return_exceptions=True)
        existing = await self.products.get_many([row.product_id for row in rows])
        hashes = [None if isinstance(data, BaseException) else _source_hash(row, data)
                  for row, data in zip(rows, fetched)]
        unchanged = [not reembed and source_hash is not None and row.product_id in existing
                     and existing[row.product_id].source_hash == source_hash for row, source_hash in zip(rows, hashes)]
        without_thumbnail = await self._without_thumbnail(rows, unchanged, existing)
        prepared = _Prepared(end)
        for row, data, source_hash, is_unchanged in zip(rows, fetched, hashes, unchanged):
            if isinstance(data, BaseException):
                prepared.failures.append(_row_error(row, data))
                continue
            if is_unchanged:
                prepared.unchanged += 1
                if row.product_id not in without_thumbnail:
                    continue
            try:
                pixels, thumbnail = await asyncio.to_thread(self._decode_with_thumbnail, data)
            except SnapfitError as error:
                if not is_unchanged:
                    prepared.failures.append(_row_error(row, error))
                continue
            prepared.thumbnails[row.product_id] = thumbnail
            if not is_unchanged:
                prepared.rows.append(row)
                prepared.pixels.append(pixels)
                prepared.source_hashes.append(source_hash)
        return prepared

    async def _without_thumbnail(self, rows: list[CatalogRow], unchanged: list[bool],
                                 existing: dict[str, Product]) -> set[str]:
        """Ids of the unchanged rows whose product has no thumbnail yet and still shows the row's photo (an edit
        may have pointed it at another one since): their photos are decoded for the thumbnail alone."""
        ids = [row.product_id for row, same in zip(rows, unchanged) if same
               and existing[row.product_id].image == row.image]
        return await self.products.thumbnails.missing(ids) if ids else set()

    def _decode_with_thumbnail(self, data: bytes) -> tuple[np.ndarray, Thumbnail]:
        """The photo's HxWx3 uint8 RGB pixels and its thumbnail (on a worker thread: both are CPU work)."""
        pixels = decode_image(data, self.fetch_max_bytes, self.max_image_pixels)
        return pixels, self.products.thumbnails.make(pixels)

    async def _embed_and_store(self, job: ImportJob, batch: _Prepared) -> None:
        result = UpsertResult()
        if batch.rows:
            # one model after the other: at once, their ONNX Runtime threads fight over a CPU's cores (each
            # config already uses every core); the next batch's images load meanwhile (_produce)
            probabilities = await self._patiently(job, "tryon_classifier", self.models.tryon_probability, batch)
            embeddings = await self._patiently(job, "clip_image", self.models.clip_image, batch)
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
        # after the products: a thumbnail is never stored for a product that is not (yet)
        await self.products.thumbnails.put_many(batch.thumbnails)
        # the whole batch's outcome lands on the job at once (no await below): a saved state is always consistent
        for error in batch.failures:
            job.fail_row(error)
        job.inserted += result.inserted
        job.updated += result.updated
        job.unchanged += result.unchanged + batch.unchanged
        job.processed_rows += len(batch.rows) + batch.unchanged + len(batch.failures)
        job.next_row = batch.end
        for outcome, count in (("inserted", result.inserted), ("updated", result.updated),
                               ("unchanged", result.unchanged + batch.unchanged)):
            IMPORT_ROWS.labels(outcome=outcome).inc(count)


    async def _patiently(self, job: ImportJob, model: str, call, batch: _Prepared) -> np.ndarray:
        """`call` on the batch's images, retried through slowness and outages (services/patient_calls.py); the
        job's message says while it waits. Past the retry budget, ModelUnavailable."""
        def note(message: str | None) -> None:
            job.message = message or ""

        return await call_patiently(model, call, batch.pixels, self.chunks[model], self.retry, note)


def _source_hash(row: CatalogRow, data: bytes) -> str:
    """The row's fields and its photo's bytes, hashed: equal for a re-imported unchanged row."""
    return hashlib.sha256(f"{row.row_hash}:{content_hash(data)}".encode()).hexdigest()


def _row_error(row: CatalogRow, error: BaseException) -> RowError:
    message = error.message if isinstance(error, SnapfitError) else f"{type(error).__name__}: {error}"
    return RowError(line=row.line, product_id=row.product_id, message=f"image {row.image!r}: {message}")


class ImportJobs:
    """Starts imports in the background, keeps their progress in the store, and resumes stale ones.

    owner: this process's name in leases (unique per process: replica id + pid).
    """

    def __init__(self, pipeline: ImportPipeline, store: ImportJobStore, settings: CatalogSettings, owner: str):
        self.pipeline = pipeline
        self.store = store
        self.settings = settings
        self.owner = owner
        self.renew_every_s = max(0.2, min(settings.import_lease_s / 3, 1.0))
        self._running: dict[str, ImportJob] = {}
        self._running_tasks: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None

    async def start(self, csv_data: bytes, mapping: ColumnMapping | None = None,
                    base_dir: Path | None = None, reembed: bool = False) -> ImportJob:
        """Parses the CSV now (a broken header is a 400 right away), stores the job with its CSV, and imports its
        rows in the background.

        Local image paths are allowed only under `catalog.image_root`; relative ones resolve against base_dir.
        reembed: run the models on every row, also on rows whose product is stored unchanged.
        """
        rows, errors = await asyncio.to_thread(parse_catalog_csv, csv_data, mapping, base_dir=base_dir)
        job = self.pipeline.new_job(rows, errors)
        job.reembed = reembed
        now = time.time()
        options = {"mapping": None if mapping is None else mapping.model_dump(),
                   "base_dir": None if base_dir is None else str(base_dir)}
        await self.store.create_import(ImportRecord(
            job_id=job.job_id, status=job.status, state=job.to_state(), options=options, owner=self.owner,
            heartbeat_at=now, created_at=now, csv=csv_data))
        self._launch(job, rows)
        return job

    async def resume(self, job_id: str) -> ImportJob:
        """Takes a failed import up again after its last finished batch (with its stored CSV and options); the
        rows it finished stay, and rows of a batch that was in flight count unchanged when imported again.
        NotFound for an unknown id, Conflict unless the job failed, UnresumableImport if its CSV is gone."""
        if (running := self._running_tasks.get(job_id)) is not None:
            if self._running[job_id].status not in ("succeeded", "failed"):
                raise Conflict(f"import {job_id} is {self._running[job_id].status}; only a failed import can be "
                               "resumed")
            # it has just ended here and GET already says so: wait until its end is in the store
            await asyncio.wait({running})
        record = await self.store.reopen_import(job_id, self.owner)
        if record is None:
            existing = await self.store.get_import(job_id)
            if existing is None:
                raise NotFound(f"no import job {job_id!r}")
            raise Conflict(f"import {job_id} is {existing.status}; only a failed import can be resumed")
        job = ImportJob.from_state(record.job_id, "queued", record.state)
        job.message, job.finished_at = "", 0.0
        await self._relaunch(job, record, why="on request, after it failed")
        return job

    async def get(self, job_id: str) -> ImportJob:
        """The job as this replica runs it, else as the store has it (any replica's); NotFound otherwise."""
        if job_id in self._running:
            return self._running[job_id]
        record = await self.store.get_import(job_id)
        if record is None:
            raise NotFound(f"no import job {job_id!r}")
        return ImportJob.from_state(record.job_id, record.status, record.state)

    def watch(self) -> None:
        """Starts looking for imports whose replica stopped renewing their lease, and resuming them."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="import-watcher")

    async def close(self) -> None:
        """Stops every import running here without finishing it: its lease runs out and a replica resumes it."""
        tasks = [*self._tasks, *([self._watcher] if self._watcher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watcher = None

    # ---- running, renewing, resuming -------------------------------------------------------------------------

    def _launch(self, job: ImportJob, rows: Sequence[CatalogRow]) -> None:
        self._running[job.job_id] = job
        task = asyncio.create_task(self._run(job, rows), name=f"import-{job.job_id}")
        self._running_tasks[job.job_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._update_pending()

    async def _run(self, job: ImportJob, rows: Sequence[CatalogRow]) -> None:
        run = asyncio.current_task()
        keeper = asyncio.create_task(self._keep_lease(job, run))
        root = self.settings.image_root
        try:
            async with ImageLoader(max_bytes=self.settings.fetch_max_bytes, timeout_s=self.settings.fetch_timeout_s,
                                   allow_local_files=root is not None, allowed_root=root,
                                   allow_private_networks=self.settings.allow_private_networks) as loader:
                await self.pipeline.run(job, rows, loader)
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await self._save_final(job)
        finally:
            keeper.cancel()
            self._running.pop(job.job_id, None)
            self._running_tasks.pop(job.job_id, None)
            self._update_pending()

    async def _keep_lease(self, job: ImportJob, run: asyncio.Task) -> None:
        """Saves the job's progress (renewing its lease) every renew_every_s; stops the run if another replica
        has claimed the job meanwhile."""
        while True:
            await asyncio.sleep(self.renew_every_s)
            self._update_pending()
            try:
                held = await self.store.update_import(job.job_id, self.owner, job.status, job.to_state())
            except SnapfitError as error:
                log.warning("cannot renew the lease of import %s (%s)", job.job_id, error.message)
                continue
            if not held:
                log.warning("import %s was taken over by another replica; stopping it here", job.job_id)
                run.cancel()
                return

    async def _save_final(self, job: ImportJob) -> None:
        for attempt in range(3):
            try:
                if not await self.store.update_import(job.job_id, self.owner, job.status, job.to_state()):
                    log.warning("import %s finished here after another replica took it over", job.job_id)
                return
            except SnapfitError as error:
                log.warning("cannot save the end of import %s (%s)", job.job_id, error.message)
                await asyncio.sleep(self.renew_every_s * (attempt + 1))

    async def _watch(self) -> None:
        pruned_at = 0.0
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    pruned_at = time.monotonic()
                    cutoff = time.time() - self.settings.import_retention_days * 86400
                    if pruned := await self.store.prune_imports(cutoff):
                        log.info("forgot %d import jobs that ended over %g days ago", pruned,
                                 self.settings.import_retention_days)
                record = await self.store.claim_stale_import(self.owner, self.settings.import_lease_s)
                # a job this process still runs (its renewals failed while the store was away): keep that run
                if record is not None and record.job_id not in self._running:
                    await self._resume(record)
            except UnresumableImport as error:
                await self._fail_unresumable(error)
            except SnapfitError as error:
                log.warning("cannot look for imports to resume (%s)", error.message)
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failed attempt
                log.exception("resuming an import failed")

    async def _resume(self, record: ImportRecord) -> None:
        job = ImportJob.from_state(record.job_id, record.status, record.state)
        await self._relaunch(job, record, why="its replica stopped renewing it")

    async def _relaunch(self, job: ImportJob, record: ImportRecord, why: str) -> None:
        """Runs `job` on from its next row with the CSV and options of `record` (a claimed or reopened job)."""
        job.resumed += 1
        log.info("resuming import %s after row %d of %d (%s)", job.job_id, job.next_row, job.total_rows, why)
        mapping = record.options.get("mapping")
        base_dir = record.options.get("base_dir")
        try:
            rows, _ = await asyncio.to_thread(
                parse_catalog_csv, record.csv or b"", None if mapping is None else ColumnMapping(**mapping),
                base_dir=None if base_dir is None else Path(base_dir))
        except SnapfitError as error:
            job.status, job.message, job.finished_at = "failed", f"cannot resume: {error.message}", time.time()
            await self._save_final(job)
            return
        self._launch(job, rows)

    async def _fail_unresumable(self, error: UnresumableImport) -> None:
        """Marks a claimed job that cannot be resumed (its CSV is incomplete) failed, so nobody claims it again."""
        log.warning("import %s cannot be resumed: %s", error.job_id, error.message)
        record = await self.store.get_import(error.job_id)
        if record is not None:
            job = ImportJob.from_state(record.job_id, record.status, record.state)
            job.status, job.message, job.finished_at = "failed", f"cannot resume: {error.message}", time.time()
            await self._save_final(job)

    def _update_pending(self) -> None:
        IMPORT_ROWS_PENDING.set(sum(job.total_rows - job.processed_rows for job in self._running.values()))
