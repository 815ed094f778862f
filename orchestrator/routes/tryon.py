"""Try-on: POST /v1/tryon (start), GET .../{job_id} (poll), .../events (SSE), .../result (PNG), DELETE (cancel)."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from orchestrator.errors import InvalidInput
from orchestrator.images import decode_image
from orchestrator.routes.access import GatedRoute, rate_limited
from orchestrator.routes.deps import services
from orchestrator.routes.params import TryOnJobId
from orchestrator.schemas import ErrorBody, ErrorDetail
from orchestrator.services.tryon import TryOnParameters
from snapfit import contract

router = APIRouter(prefix="/v1/tryon", tags=["try-on"], dependencies=[Depends(rate_limited)], route_class=GatedRoute)
ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 409, 413, 415, 422, 429, 503)}
CATEGORIES = " | ".join(contract.TRYON_CATEGORIES)
SCHEDULER_PATTERN = f"^({'|'.join(contract.TRYON_SCHEDULERS)})$"


class TryOnJobOut(BaseModel):
    job_id: str
    status: str = Field(description="queued | preparing | running | succeeded | failed | cancelled")
    product_id: str
    category: str = Field(description=CATEGORIES)
    step: int = Field(description="denoising steps done")
    total_steps: int
    error: ErrorDetail | None = None
    result_url: str | None = Field(None, description="GET it for the PNG once the job has succeeded")
    created_at: float
    started_at: float | None
    finished_at: float | None


def job_out(job) -> TryOnJobOut:
    error = ErrorDetail(code=job.error_code, message=job.error_message) if job.error_code else None
    return TryOnJobOut(job_id=job.job_id, status=job.status, product_id=job.product_id, category=job.category,
                       step=job.step, total_steps=job.total_steps, error=error,
                       result_url=f"/v1/tryon/{job.job_id}/result" if job.status == "succeeded" else None,
                       created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at)


@router.post("", response_model=TryOnJobOut, status_code=202, responses=ERRORS,
             summary="Dress the person in a photo (upload `file` or give an uploaded `image_id`) in a product")
async def start_tryon(
    product_id: str = Form(..., examples=["SF-000002"]),
    file: UploadFile | None = File(None, description="full-body photo (JPEG, PNG or WebP)"),
    image_id: str | None = Form(None, description="a photo uploaded with POST /v1/images"),
    category: str | None = Form(None, description=f"{CATEGORIES} (default: from the product)"),
    steps: int | None = Form(None, ge=contract.TRYON_MIN_STEPS, le=contract.TRYON_MAX_STEPS,
                             description="denoising steps (default: SNAPFIT_TRYON__DEFAULT_STEPS, 50)"),
    guidance: float | None = Form(None, ge=contract.TRYON_MIN_GUIDANCE, le=contract.TRYON_MAX_GUIDANCE,
                                  description="classifier-free guidance (default 7.5)"),
    seed: int = Form(1234, ge=0, le=contract.TRYON_MAX_SEED, description="same seed + inputs -> same image"),
    scheduler: str | None = Form(None, pattern=SCHEDULER_PATTERN,
                                 description="ddim (default) or dpmpp (DPM-Solver++)"),
    force: bool = Form(False, description="try even if the product photo was classified as unusable"),
    svc=Depends(services),
) -> TryOnJobOut:
    if (file is None) == (image_id is None):
        raise InvalidInput("give exactly one of file (a photo upload) and image_id")
    if file is not None:
        data = await svc.read_upload(file)
        limits = svc.settings.images
        person = await asyncio.to_thread(decode_image, data, limits.max_upload_bytes, limits.max_pixels)
    else:
        person = await svc.images.pixels(image_id)
    defaults = svc.settings.tryon
    parameters = TryOnParameters(steps=steps or defaults.default_steps,
                                 guidance=defaults.default_guidance if guidance is None else guidance,
                                 seed=seed, scheduler=scheduler or defaults.default_scheduler)
    job = await svc.tryon.submit(person, product_id, category, parameters, force=force)
    return job_out(job)


@router.get("/{job_id}", response_model=TryOnJobOut, responses=ERRORS, summary="A try-on job's state and progress")
async def get_tryon(job_id: TryOnJobId, svc=Depends(services)) -> TryOnJobOut:
    return job_out(svc.tryon.get(job_id))


@router.get("/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
            summary="Server-Sent Events: `progress` after every step, then one `done` with the final state")
async def follow_tryon(job_id: TryOnJobId, svc=Depends(services)) -> EventSourceResponse:
    svc.tryon.get(job_id)  # 404 before the stream starts

    async def events():
        async for job in svc.tryon.follow(job_id):
            done = job.status in ("succeeded", "failed", "cancelled")
            yield {"event": "done" if done else "progress", "data": json.dumps(job_out(job).model_dump())}

    return EventSourceResponse(events(), ping=15)


@router.get("/{job_id}/result", response_class=Response, responses={200: {"content": {"image/png": {}}}, **ERRORS},
            summary="The dressed photo (PNG, the person photo's size) of a succeeded job")
async def tryon_result(job_id: TryOnJobId, svc=Depends(services)) -> Response:
    return Response(svc.tryon.result(job_id), media_type="image/png")


@router.delete("/{job_id}", response_model=TryOnJobOut, responses=ERRORS, summary="Cancel a queued or running job")
async def cancel_tryon(job_id: TryOnJobId, svc=Depends(services)) -> TryOnJobOut:
    return job_out(await svc.tryon.cancel(job_id))
