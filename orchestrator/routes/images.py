"""POST /v1/images (upload a photo) and POST /v1/images/{image_id}/masks (click -> top-3 masks)."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from fastapi import APIRouter, Depends, File, Response, UploadFile

from orchestrator import masks as mask_codec
from orchestrator.routes.access import GatedRoute, rate_limited
from orchestrator.routes.deps import services
from orchestrator.routes.params import ImageId
from orchestrator.schemas import ErrorBody, ImageUploaded, MasksRequest, MasksResponse
from orchestrator.timing import stage

router = APIRouter(prefix="/v1/images", tags=["images"], dependencies=[Depends(rate_limited)], route_class=GatedRoute)
ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 429, 503)}


@router.post("", response_model=ImageUploaded, responses=ERRORS,
             summary="Upload a photo (JPEG, PNG or WebP); returns its id (the sha256 of the bytes)")
async def upload_image(file: UploadFile = File(..., description="the photo (JPEG, PNG or WebP)"),
                       svc=Depends(services)) -> ImageUploaded:
    data = await svc.read_upload(file)
    info = await svc.images.add(data)
    return ImageUploaded(image_id=info.image_id, width=info.width, height=info.height)


@router.post("/{image_id}/masks", response_model=MasksResponse, responses=ERRORS,
             summary="Segment the garment under the clicked points and/or box: the top 3 masks, best first")
async def predict_masks(image_id: ImageId, body: MasksRequest, svc=Depends(services)) -> Response:
    box = (body.box.x0, body.box.y0, body.box.x1, body.box.y1) if body.box else None
    scored = await svc.segment.masks(image_id, [(p.x, p.y) for p in body.points], [p.label for p in body.points], box)
    height, width = scored[0].mask.shape
    with stage("encode"):
        # off the event loop and side by side: a photo-size mask's run lengths or PNG take milliseconds each
        encoded = await asyncio.gather(*(asyncio.to_thread(_encoded, m.mask, body.format) for m in scored))
    masks = [{"score": m.score, **fields} for m, fields in zip(scored, encoded)]
    # MasksResponse's JSON, written by orjson straight from the run-length arrays: through pydantic, a mask's
    # ~10^5 runs (random-weight SAM masks are noise) cost a Python list and its serialisation, ~5 ms a click
    content = orjson.dumps({"image_id": image_id, "width": width, "height": height, "masks": masks},
                           option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, media_type="application/json")


def _encoded(mask: np.ndarray, mask_format: str) -> dict:
    """HxW bool -> the mask's `rle` and `png` fields of MasksResponse, the one not asked for None."""
    height, width = mask.shape
    return {"rle": {"size": [height, width], "counts": mask_codec.rle_counts(mask)} if mask_format == "rle" else None,
            "png": mask_codec.encode_png(mask) if mask_format == "png" else None}
