# syntax=docker/dockerfile:1
# `snapfit export` on a GPU: writes the model repository (configs, model.onnx + parity.json, try-on weights) into a
# volume that Triton then serves. Build from the repository root:
#
#   docker build -f docker/export.Dockerfile -t REGISTRY/snapfit-export:0.1.0 .
#   docker run --gpus all -v snapfit-models:/models REGISTRY/snapfit-export:0.1.0 \
#     export --profile base --precision fp16 --repository /models
#
# Base image: a plain Python 3.11, not a CUDA image. torch 2.14.1 and onnxruntime-gpu 1.31.1 come from PyPI with
# their own CUDA 13.0 user-space libraries (cuBLAS, cuDNN 9, ...: the nvidia-* wheels of the lock), and the NVIDIA
# container runtime mounts the node's driver (>= 580 for CUDA 13); a CUDA base image would add a second, unused
# CUDA of several GB. onnxruntime-gpu replaces onnxruntime so fp16 parity is measured on the GPU's CUDA kernels
# (export/publish.py; without CUDA it is measured on the CPU, which fails for the fp16 classifier).
FROM python:3.11.14-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

COPY docker/requirements-export.txt /tmp/requirements-export.txt
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir --no-deps -r /tmp/requirements-export.txt \
 && pip check \
 && rm /tmp/requirements-export.txt

# The exporters find the committed configs in model_repository/ beside export/ (export/repository.py), hence the
# editable install of the source tree; .dockerignore keeps exported files and weights out of it.
COPY pyproject.toml README.md /opt/snapfit/
COPY snapfit /opt/snapfit/snapfit
COPY tryon /opt/snapfit/tryon
COPY export /opt/snapfit/export
COPY model_repository /opt/snapfit/model_repository
COPY docker/repository_gate.py /opt/snapfit/docker/repository_gate.py
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/snapfit \
 && python -c "import export.runner, snapfit.cli" \
 && groupadd --gid 10001 snapfit \
 && useradd -l --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin snapfit

USER 10001:10001
WORKDIR /home/snapfit
ENTRYPOINT ["snapfit"]
CMD ["export", "--help"]
