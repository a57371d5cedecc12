# The two set-up commands (README): `make demo` runs the main job on the embedded default (no downloads),
# `make test` runs the test suite. Both install what is missing first (scripts/setup.sh).
PYTHON ?= python3
export PYTHON

.PHONY: install demo test bench gpu-smoke clean

install: .install-stamp

.install-stamp: pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch .install-stamp

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
