"""/healthz (the process is alive), /readyz (Triton models, index, store), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.routes.deps import services
from orchestrator.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}},
            summary="Readiness: the interactive Triton models ready, the index loaded, the store reachable "
                    "(the try-on model is reported, not required)")
async def readyz(svc=Depends(services)) -> JSONResponse:
    checks = await svc.readiness()
    healthy = svc.ready(checks)
    body = Health(status="ok" if healthy else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503,
                        headers=None if healthy else {"Retry-After": "5"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
