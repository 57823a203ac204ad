# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Where the real CamVid copy lives (tests, benchmarks, notebooks in CI).
CAMVID ?= ../shared/camvid
export LATENT_WIDGETS_CAMVID ?= $(abspath $(CAMVID))

.PHONY: demo lint test test-fast bench docs docs-images clean

# keras-hub goes in with --no-deps: its tensorflow-text would pull the full tensorflow (see pyproject.toml).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,docs]"
	$(PY) -m pip install --quiet --no-deps "keras-hub>=0.32"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/latent-widgets demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two workers (pytest-xdist), a module whole on one of them; the 25 slowest tests listed at the end.
PYTEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=25

# The inner loop: no browser, notebook or slow tests.
test-fast: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=10 \
		-m "not browser and not notebooks and not slow"

# Refreshes the screenshots in docs/img/ from the browser tests.
docs-images: $(STAMP)
	LATENT_WIDGETS_SCREENSHOTS=$(abspath docs/img) $(PY) -m pytest -q tests/test_browser.py

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Executes the notebooks on CamVid (small settings) into docs/notebooks/, then builds site/.
docs: $(STAMP)
	LATENT_WIDGETS_EXECUTED_NOTEBOOKS=$(abspath docs/notebooks) $(PY) -m pytest -q tests/test_notebooks.py -k "not docs_build"
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache
