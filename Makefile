# The two set-up commands (README): `make demo` runs the main job on the embedded default (no downloads),
# `make test` runs the test suite. Both first install what is missing (scripts/setup.sh) into a virtual
# environment, .venv/ by default (VENV=path to use another; VENV= PYTHON=python3 to use an existing Python).
VENV ?= .venv
ifeq ($(strip $(VENV)),)
PYTHON ?= python3
STAMP := .install-stamp
else
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
export PATH := $(abspath $(VENV))/bin:$(PATH)
endif
export PYTHON VENV

.PHONY: install demo test bench gpu-smoke clean distclean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

demo: install
	$(PYTHON) -m booster.cli demo

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) benchmarks/extract.py

# On a CUDA machine: fit/test/separate/features on the GPU, one line per check (DEVICE=cpu: same steps on CPU).
gpu-smoke: install
	bash scripts/gpu_smoke.sh

clean:
	rm -rf .install-stamp build *.egg-info .pytest_cache demo_out

distclean: clean
	rm -rf .venv
