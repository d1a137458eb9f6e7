# `make test` and `make demo` each build .venv when it is missing, install the project, and run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed-stamp

.PHONY: test demo lint bench clean clean-cache

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	# torch first, pinned, from TORCH_INDEX when given (e.g. PyTorch's CPU index: on Linux, PyPI's
	# wheel is the CUDA build); the package's own install then keeps it.
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev,onnx,serve,deploy]"
	@touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n auto --maxprocesses 4 --durations=20

demo: $(STAMP)
	$(VENV)/bin/nexnet demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_masa.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo

clean-cache:  # without an installed .venv, remove nexnet's folders there rather than install to do it
	@if [ -f $(STAMP) ]; then $(PY) -m nexnet cache --clear; else \
	d="$${NEXNET_CACHE_DIR-$$HOME/.cache/nexnet-seg}"; rm -rf "$$d/facts" "$$d/arrays"; echo "cleared $$d"; fi
