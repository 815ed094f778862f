# syntax=docker/dockerfile:1
# The orchestrator (`snapfit serve`, FastAPI on port 8080). Build from the repository root:
#
#   docker build -f docker/orchestrator.Dockerfile -t REGISTRY/snapfit-orchestrator:0.1.0 .
#
# Runtime dependencies only: what orchestrator/ and the CLI's module level import (docker/pin_requirements.py's
# ORCHESTRATOR_ROOTS; tests/deploy checks them against the import graph). No torch: the orchestrator calls every
# model through Triton and detects poses with mediapipe. Settings come from SNAPFIT_* variables
# (orchestrator/settings.py), among them SNAPFIT_WORKERS, the number of uvicorn workers (default 1).
FROM python:3.11.14-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# mediapipe's pose model runs through opencv-contrib-python, which links libGL and GLib. Debian keeps one build of
# each package per suite and drops superseded ones, so exact version pins would break at the next security update;
# the pinned base image fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY docker/requirements-orchestrator.txt /tmp/requirements-orchestrator.txt
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir --no-deps -r /tmp/requirements-orchestrator.txt \
 && pip check \
 && rm /tmp/requirements-orchestrator.txt

COPY pyproject.toml README.md /opt/snapfit/
COPY snapfit /opt/snapfit/snapfit
COPY orchestrator /opt/snapfit/orchestrator
COPY tryon /opt/snapfit/tryon
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/snapfit \
 && python -c "import orchestrator.app, snapfit.cli" \
 && groupadd --gid 10001 snapfit \
 && useradd -l --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin snapfit

USER 10001:10001
WORKDIR /home/snapfit
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SNAPFIT_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["snapfit"]
CMD ["serve"]
