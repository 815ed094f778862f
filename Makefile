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
PROFILE       ?= base
REPOSITORY    ?= model_repository

.PHONY: help env demo test test-fast export triton clean-exports

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
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

env: $(VENV)/.installed $(TRITONSERVER)  ## create .venv and unpack tritonserver into .tools

export: env  ## export every model (PROFILE=base|tiny) into REPOSITORY
	$(VENV)/bin/snapfit export --profile $(PROFILE) --repository $(REPOSITORY)

triton: env  ## serve REPOSITORY with the CPU configs
	$(VENV)/bin/snapfit triton --repository $(REPOSITORY)

demo: env  ## export the full-size models, start Triton + the API, import a demo catalog
	$(VENV)/bin/snapfit up --profile $(PROFILE) --demo-catalog 1000

test: env  ## run the whole test suite (everything but GPU tests)
	$(VENV)/bin/python -m pytest

test-fast: env  ## unit tests only
	$(VENV)/bin/python -m pytest tests/unit

clean-exports:  ## delete exported ONNX files and parity reports
	find $(REPOSITORY) -path '*/1/*' \( -name '*.onnx' -o -name '*.onnx.data' -o -name 'parity.json' \) -delete
