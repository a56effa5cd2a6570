# The two set-up commands: `make demo` and `make test`. Both install into .venv first if needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install bench

install: $(STAMP)

# torch/torchvision are pinned to the registry's CUDA build, which runs on the CPU too;
# the CPU-only torch 2.13 wheel lying on these machines cannot load torchvision's ops.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgewise demo

test: $(STAMP)
	$(PY) -m pytest -q
