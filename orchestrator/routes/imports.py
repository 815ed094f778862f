"""CSV imports into the catalog: POST /v1/catalog/imports (upload) and GET /v1/catalog/imports/{job_id} (progress)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel, Field

from orchestrator.errors import InvalidInput
from orchestrator.ingest import ColumnMapping
from orchestrator.routes.access import GatedRoute, require_admin
from orchestrator.routes.deps import services
from orchestrator.routes.params import ImportJobId
from orchestrator.schemas import ErrorBody

router = APIRouter(prefix="/v1/catalog", tags=["catalog"], route_class=GatedRoute)
ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 503)}
ADMIN_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 422, 503)}


class RowErrorOut(BaseModel):
    line: int
    product_id: str | None
    message: str


class ImportJobOut(BaseModel):
    job_id: str
    status: str = Field(description="queued | running | succeeded | failed")
    total_rows: int
    processed_rows: int
    inserted: int
    updated: int
    unchanged: int
    failed: int
    rows_per_second: float
    resumed: int = Field(description="times a replica took this job over after its replica stopped")
    reembed: bool = Field(description="every row is embedded and classified again, also unchanged ones")
    message: str
    errors: list[RowErrorOut] = Field(description="per-row problems (the first 1,000)")


def job_out(job) -> ImportJobOut:
    return ImportJobOut(job_id=job.job_id, status=job.status, total_rows=job.total_rows,
                        processed_rows=job.processed_rows, inserted=job.inserted, updated=job.updated,
                        unchanged=job.unchanged, failed=job.failed, rows_per_second=round(job.rows_per_second, 2),
                        resumed=job.resumed, reembed=job.reembed, message=job.message,
                        errors=[RowErrorOut(line=e.line, product_id=e.product_id, message=e.message)
                                for e in job.errors])


@router.post("/imports", response_model=ImportJobOut, status_code=202, responses=ADMIN_ERRORS,
             dependencies=[Depends(require_admin)],
             summary="Import a catalog CSV (id, name, image, link, brand, price, tags, category); admin")
async def start_import(
    file: UploadFile = File(..., description="UTF-8 CSV"),
    mapping: str | None = Form(None, description='JSON column mapping, e.g. {"product_id": "sku"}',
                               examples=['{"product_id": "sku", "image": "image_url"}']),
    base_dir: str | None = Form(None, description="folder relative image paths resolve against "
                                                  "(must lie under SNAPFIT_CATALOG__IMAGE_ROOT)",
                                examples=["/data/catalog"]),
    reembed: bool = Form(False, description="embed and classify every row again, also rows stored unchanged: "
                                            "after the served CLIP or classifier changed", examples=[False]),
    svc=Depends(services),
) -> ImportJobOut:
    data = await svc.read_upload(file)
    column_mapping = None
    if mapping:
        try:
            column_mapping = ColumnMapping.model_validate(json.loads(mapping))
        except (ValueError, TypeError) as error:
            raise InvalidInput(f"mapping must be a JSON object of column names: {error}") from None
    job = await svc.imports.start(data, column_mapping, Path(base_dir) if base_dir else None, reembed=reembed)
    return job_out(job)


@router.post("/imports/{job_id}/resume", response_model=ImportJobOut, status_code=202,
             responses={**ADMIN_ERRORS, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
             dependencies=[Depends(require_admin)],
             summary="Resume a failed import after its last finished batch (its CSV and options are kept); admin")
async def resume_import(job_id: ImportJobId, svc=Depends(services)) -> ImportJobOut:
    return job_out(await svc.imports.resume(job_id))


@router.get("/imports/{job_id}", response_model=ImportJobOut, responses=ERRORS, summary="Progress of an import")
async def get_import(job_id: ImportJobId, svc=Depends(services)) -> ImportJobOut:
    return job_out(await svc.imports.get(job_id))
