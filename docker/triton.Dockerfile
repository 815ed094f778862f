# syntax=docker/dockerfile:1
# snapfit's Triton: NVIDIA's tritonserver image 24.10 (server 2.51 with its onnxruntime and Python backends, CUDA
# 12.6) plus what the Python-backend models import. Build from the repository root:
#
#   docker build -f docker/triton.Dockerfile -t REGISTRY/snapfit-triton:0.1.0 .
#
# The model repository is not in the image: it is a volume mounted at /models, written by `snapfit export`
# (docker/export.Dockerfile). Served as is, each model's config.pbtxt (GPU); `--model-config-name=cpu` selects
# configs/cpu.pbtxt, whose backend `onnxruntime_cpu` is our ONNX Runtime runner, installed below.
#
# Python. NGC 24.x images are Ubuntu 22.04 with Python 3.10, and Triton's Python backend stub embeds that Python.
# The project cannot run there: pyproject.toml requires >=3.11,<3.12, and the pinned diffusers 0.42,
# transformers 5.25, onnxruntime 1.32, pillow 13, regex, networkx and filelock declare Requires-Python >=3.11
# (their releases have no cp310 wheels, so `pip install --ignore-requires-python` cannot help). So the image adds
# Ubuntu's python3.11 and replaces the stub by the one built for 3.11 that the nvidia-pytriton wheel ships for the
# same server release 2.51: the stub the test suite runs (snapfit/triton/launcher.py). Only the stub is swapped:
# the backend library stays NGC's (pytriton's links pytriton's own libtritonserver). The stub embeds the Python
# whose venv comes first on PATH, so /opt/venv/bin goes first.
#
# torch 2.14.1 from PyPI brings its own CUDA 13.0 runtime (the nvidia-* wheels in the lock): nodes need an NVIDIA
# driver >= 580 for the try-on model, besides the >= 560 (or data-center R535/R550 compat) that 24.10 needs.
FROM nvcr.io/nvidia/tritonserver:24.10-py3

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Ubuntu 22.04 (universe) holds one python3.11 build per pocket and drops superseded ones, so an exact version pin
# would break the build at its next security update; the pinned base image fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libpython3.11 \
 && rm -rf /var/lib/apt/lists/*

ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1

# The lock (docker/pin_requirements.py): .venv's exact versions of what ladi_vton (torch, diffusers, transformers),
# clip_tokenizer (open_clip) and the onnxruntime_cpu runner (onnxruntime) import, with their dependencies.
COPY docker/requirements-triton.txt /tmp/requirements-triton.txt
RUN python3.11 -m venv /opt/venv \
 && pip install --no-cache-dir --no-deps -r /tmp/requirements-triton.txt \
 && pip check \
 && rm /tmp/requirements-triton.txt

# The 3.11 stub of nvidia-pytriton 0.7.0 (tritonserver 2.51 = NGC 24.10) and the CUDA runtime it links, which
# the wheel vendors under a hashed name; LD_LIBRARY_PATH finds it (the stub's RPATH points into the wheel's tree).
ARG PYTRITON_VERSION=0.7.0
RUN pip download --no-cache-dir --no-deps --dest /tmp/wheels "nvidia-pytriton==${PYTRITON_VERSION}" \
 && python -m zipfile -e /tmp/wheels/nvidia_pytriton-${PYTRITON_VERSION}-*.whl /tmp/pytriton \
 && install -D -m 0755 /tmp/pytriton/pytriton/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub \
      /opt/tritonserver/backends/python/triton_python_backend_stub \
 && install -D -m 0644 -t /opt/pytriton/lib /tmp/pytriton/nvidia_pytriton.libs/libcudart-*.so.* \
 && rm -rf /tmp/wheels /tmp/pytriton
ENV LD_LIBRARY_PATH=/opt/pytriton/lib:${LD_LIBRARY_PATH}
RUN if ldd /opt/tritonserver/backends/python/triton_python_backend_stub | grep "not found"; then exit 1; fi

# The repository's packages (editable: tryon and snapfit import from /opt/snapfit), the onnxruntime_cpu runner
# twice, as snapfit/triton/launcher.py lays it out: libtriton_onnxruntime_cpu.so runs it inside Triton's process
# (compiled here against Ubuntu's python3.11, the compiler and headers removed again in the same layer; it embeds
# the interpreter SNAPFIT_PYTHON names) and model.py, the Python-based backend Triton would fall back to without
# the library; and the repository gate of Kubernetes' init container (docker/repository_gate.py wait /models).
COPY pyproject.toml README.md /opt/snapfit/
COPY snapfit /opt/snapfit/snapfit
COPY tryon /opt/snapfit/tryon
COPY docker/repository_gate.py /opt/snapfit/docker/repository_gate.py
ENV SNAPFIT_PYTHON=/opt/venv/bin/python
# g++ and python3.11-dev only live for the build below, from the pinned base image's Ubuntu release (as above)
# hadolint ignore=DL3008
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/snapfit \
 && mkdir -p /opt/tritonserver/backends/onnxruntime_cpu \
 && ln -s /opt/snapfit/snapfit/triton/backends/onnxruntime_cpu/model.py \
      /opt/tritonserver/backends/onnxruntime_cpu/model.py \
 && apt-get update \
 && apt-get install -y --no-install-recommends g++ python3.11-dev \
 && python -m snapfit.triton.inprocess_build /opt/tritonserver/backends/onnxruntime_cpu \
 && apt-get purge -y --auto-remove g++ python3.11-dev \
 && rm -rf /var/lib/apt/lists/* \
 && if ldd /opt/tritonserver/backends/onnxruntime_cpu/libtriton_onnxruntime_cpu.so | grep "not found"; then exit 1; fi \
 && python -c "import onnxruntime, open_clip, tryon.pipeline, tryon.serving" \
 && groupadd --gid 10001 snapfit \
 && useradd -l --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin snapfit

USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=30s --timeout=5s --start-period=900s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"]
CMD ["tritonserver", "--model-repository=/models", "--strict-readiness=true", "--exit-on-error=true", \
     "--cache-config=local,size=67108864"]
