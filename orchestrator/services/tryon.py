"""Try-on jobs: a shopper's photo + a product -> a PNG of the shopper wearing it, followed step by step.

Submitting checks everything that can be refused at once (unknown product, a product photo the classifier
marked unusable unless forced, a photo without a detectable person, a full queue) and returns a job; the job
then prepares the conditions (pose, inpainting mask, optionally refined with SAM), streams the denoising
steps from Triton's decoupled `ladi_vton` and keeps the result. At most `max_running` jobs run at once, at
most `max_queued` wait; beyond that submissions get Overloaded (429). Cancelling a job closes its Triton
stream, which stops the model at its next step.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

from orchestrator.domain import Product
from orchestrator.errors import Conflict, InvalidInput, NotFound, NotTryOnReady, Overloaded, SnapfitError
from orchestrator.metrics import TRYON_QUEUE, TRYON_RUNNING, TRYON_SECONDS, TRYON_STEPS_PER_SECOND
from orchestrator.services.dependencies import GarmentLoader, PersonPreprocessor, ProductLookup, TryOnModels
from orchestrator.settings import TryOnSettings
from snapfit.contract import TRYON_CATEGORIES
from tryon.compose import keep_unmasked

log = logging.getLogger(__name__)

# catalog categories -> LaDI-VTON's; anything else needs an explicit category
CATEGORY_OF_PRODUCT = {"top": "upper_body", "upper_body": "upper_body", "outer": "upper_body",
                       "bottom": "lower_body", "lower_body": "lower_body", "pants": "lower_body", "skirt": "lower_body",
                       "dress": "dresses", "dresses": "dresses", "onepiece": "dresses"}
JobStatus = Literal["queued", "preparing", "running", "succeeded", "failed", "cancelled"]
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class TryOnParameters:
    """Validated once, where they enter: the HTTP route's declared bounds (snapfit.contract's)."""

    steps: int
    guidance: float
    seed: int
    scheduler: str


@dataclass
class TryOnJob:
    job_id: str
    product_id: str
    category: str
    parameters: TryOnParameters
    status: JobStatus = "queued"
    step: int = 0
    total_steps: int = 0
    error_code: str | None = None
    error_message: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result_png: bytes | None = field(default=None, repr=False)
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    task: asyncio.Task | None = field(default=None, repr=False)

    def touch(self) -> None:
        """Wakes everyone following this job (SSE streams); they re-read the fields."""
        self.changed.set()
        self.changed = asyncio.Event()

    def finish(self, status: JobStatus, code: str | None = None, message: str | None = None) -> None:
        self.status, self.error_code, self.error_message = status, code, message
        self.finished_at = time.time()
        TRYON_SECONDS.labels(outcome=status).observe(self.finished_at - (self.started_at or self.created_at))
        self.touch()


def tryon_category(product: Product, override: str | None) -> str:
    if override is not None:
        if override not in TRYON_CATEGORIES:
            raise InvalidInput(f"category must be one of {', '.join(TRYON_CATEGORIES)}, got {override!r}")
        return override
    category = CATEGORY_OF_PRODUCT.get(product.category.lower())
    if category is None:
        raise InvalidInput(f"product {product.product_id} has category {product.category!r}, which try-on does not "
                           f"know; pass category (one of {', '.join(TRYON_CATEGORIES)})")
    return category


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class TryOnService:
    def __init__(self, models: TryOnModels, products: ProductLookup, person: PersonPreprocessor,
                 load_garment: GarmentLoader, settings: TryOnSettings):
        self.models = models
        self.products = products
        self.person = person
        self.load_garment = load_garment
        self.settings = settings
        self.jobs: OrderedDict[str, TryOnJob] = OrderedDict()
        self._slots = asyncio.Semaphore(settings.max_running)
        self._waiting = 0
        self._running = 0

    async def submit(self, person: np.ndarray, product_id: str, category: str | None, parameters: TryOnParameters,
                     force: bool = False) -> TryOnJob:
        """person: uint8 [H, W, 3] RGB. Raises NotFound, NotTryOnReady, InvalidInput, PersonNotFound, Overloaded."""
        product = await self.products.get(product_id)
        if product is None:
            raise NotFound(f"no product {product_id!r}")
        if not product.tryon_ready and not force:
            probability = "unknown" if product.tryon_probability is None else f"{product.tryon_probability:.2f}"
            raise NotTryOnReady(f"product {product_id}'s photo was classified as not usable for try-on "
                                f"(P(usable) = {probability}); pass force=true to try anyway")
        tryon_cat = tryon_category(product, category)
        if self._waiting + self._running >= self.settings.max_running + self.settings.max_queued:
            raise Overloaded(f"{self._running} try-ons are running and {self._waiting} waiting; retry later",
                             retry_after_s=30.0)
        # pose detection is the slow half of preparing a person: done once, here, so a photo without a person is a
        # 422 now rather than a failed job, and the job reuses the keypoints
        keypoints = await self.person.keypoints(person, tryon_cat)
        job = TryOnJob(job_id=uuid.uuid4().hex, product_id=product_id, category=tryon_cat, parameters=parameters,
                       total_steps=parameters.steps)
        self._remember(job)
        self._waiting += 1
        TRYON_QUEUE.set(self._waiting)
        job.task = asyncio.create_task(self._run(job, person, keypoints, product))
        return job

    def get(self, job_id: str) -> TryOnJob:
        if job_id not in self.jobs:
            raise NotFound(f"no try-on job {job_id!r}")
        return self.jobs[job_id]

    def result(self, job_id: str) -> bytes:
        job = self.get(job_id)
        if job.status != "succeeded":
            raise Conflict(f"try-on job {job_id} is {job.status}; the result exists once it has succeeded")
        return job.result_png

    async def cancel(self, job_id: str) -> TryOnJob:
        job = self.get(job_id)
        if job.status not in FINISHED and job.task is not None:
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
        return job

    async def follow(self, job_id: str) -> AsyncIterator[TryOnJob]:
        """Yields the job now and after every change until it has finished."""
        job = self.get(job_id)
        while True:
            changed = job.changed
            yield job
            if job.status in FINISHED:
                return
            await changed.wait()

    async def close(self) -> None:
        tasks = [job.task for job in self.jobs.values() if job.task is not None and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _remember(self, job: TryOnJob) -> None:
        self.jobs[job.job_id] = job
        finished = [j for j in self.jobs.values() if j.status in FINISHED]
        for old in finished[: max(0, len(self.jobs) - self.settings.keep_results)]:
            del self.jobs[old.job_id]

    async def _run(self, job: TryOnJob, person: np.ndarray, keypoints: np.ndarray, product: Product) -> None:
        waiting = True
        try:
            async with self._slots:
                self._waiting -= 1
                waiting = False
                self._running += 1
                TRYON_QUEUE.set(self._waiting)
                TRYON_RUNNING.set(self._running)
                try:
                    await self._dress(job, person, keypoints, product)
                finally:
                    self._running -= 1
                    TRYON_RUNNING.set(self._running)
        except asyncio.CancelledError:
            job.finish("cancelled", "cancelled", "cancelled by the client")
        except SnapfitError as error:
            job.finish("failed", error.code, error.message)
        except Exception as error:  # noqa: BLE001 - a job's failure is reported on the job, never lost
            log.exception("try-on job %s failed", job.job_id)
            job.finish("failed", "internal", f"{type(error).__name__}: {error}")
        finally:
            if waiting:
                self._waiting -= 1
                TRYON_QUEUE.set(self._waiting)

    async def _dress(self, job: TryOnJob, person: np.ndarray, keypoints: np.ndarray, product: Product) -> None:
        job.status, job.started_at = "preparing", time.time()
        job.touch()
        garment = await self.load_garment(product)
        region = self.models.best_mask if self.settings.sam_garment_region else None
        conditions = await self.person.conditions(person, job.category,
                                                  (self.settings.frame_height, self.settings.frame_width),
                                                  keypoints, region)
        job.status = "running"
        job.touch()
        steps_started = time.perf_counter()
        image = None
        async for update in self.models.tryon(
                person=conditions.person, garment=garment, keypoints=conditions.keypoints,
                inpaint_mask=conditions.inpaint_mask, category=job.category,
                garment_key=f"{product.product_id}:{product.source_hash}", steps=job.parameters.steps,
                guidance=job.parameters.guidance, seed=job.parameters.seed, scheduler=job.parameters.scheduler,
                timeout_s=self.settings.timeout_s):
            job.step, job.total_steps = update.step, update.total_steps
            image = update.image if update.image is not None else image
            job.touch()
        if image is None:
            raise SnapfitError("the try-on model ended without an image")
        TRYON_STEPS_PER_SECOND.observe(job.parameters.steps / max(time.perf_counter() - steps_started, 1e-9))
        if self.settings.keep_unmasked:
            image = await asyncio.to_thread(keep_unmasked, image, conditions.person, conditions.inpaint_mask)
        result = conditions.frame_fit.to_original(image)
        job.result_png = await asyncio.to_thread(encode_png, result)
        job.finish("succeeded")
