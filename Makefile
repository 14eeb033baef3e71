# Two commands do all the set-up: `make demo` and `make test`.
# TORCH_SPEC pins the CPU build of torch that installs from local disk; a GPU user
# points it at a CUDA build, e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url ..."`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dce_monai_installed
DEMO_OUT ?= demo_output
PYTEST_ARGS ?= -n 2

.PHONY: install demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	@# torch first, unless one is already importable (so a CUDA build stays in place)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dce-monai demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS) tests

# Benchmarks print ratios against peers measured in the same run (docs/benchmarks.md): every
# script at its defaults (demo size), then the full-size cases (448-512 voxels in-plane, ~150
# slices), FCM at 1e7 integer and 2e6 float voxels, and the preprocessing cache on a
# 100-patient cohort. About 30 minutes on 2 free cores.
BENCH_FULL = "bench_n4.py --size full --seeds 0 5" "bench_end_to_end.py --grid full --repeats 1" \
	"bench_fcm.py --voxels 10000000" "bench_fcm.py --data-kind float --voxels 2000000" \
	"bench_preprocess_cache.py --patients 100"
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
	@for b in $(BENCH_FULL); do echo "== benchmarks/$$b"; $(PY) benchmarks/$$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check dce_monai tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
