# Quickstart: `make demo` runs the whole pipeline on local real parts; `make test` runs every check.
# Both set up .venv from requirements.lock first; nothing else needs to be installed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test unit lint typecheck format schemas lock bench bench-outage bench-oversized bench-retention helm-docs clean fuzz

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.lock
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	touch $@

# Two distributions, installed (not editable) so tests and the demo run what the wheels ship: the ingestor (.),
# which is all the image holds, and its development tools (tools/: the emulator, the generator, the samples).
install: $(STAMP) ## set up .venv and install the ingestor and its development tools into it
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --force-reinstall . ./tools

demo: install ## broker + emulator + generated traffic + ingestor, then rows per table
	$(BIN)/python tests/demo.py

# Two lanes: `unit` deselects every test marked `parts` (it starts a real part: broker, emulator, Azurite, Helm,
# Node.js, a subprocess; markers in pyproject.toml, enforced by tests/conftest.py); `test` runs both lanes.
test: install lint typecheck ## lint, type-check and the whole test suite: both lanes, every real part
	$(BIN)/pytest -p no:cacheprovider -q $(PYTEST_ARGS)

# `unit` spreads its tests over two worker processes (pytest-xdist): they share nothing but the CPU.
unit: install ## the quick lane: the tests that start no real part (-m "not parts"), on two workers
	$(BIN)/pytest -p no:cacheprovider -q -m "not parts" -n 2 $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check + format check
	$(BIN)/ruff check ingestor tools tests benchmarks schemas helm
	$(BIN)/ruff format --check ingestor tools tests benchmarks schemas helm

typecheck: $(STAMP) ## mypy --strict on ingestor/ and tools/, and the test fakes against the seams they stand in for
	$(BIN)/mypy
	$(BIN)/mypy --strict tests/fakes.py

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix ingestor tools tests benchmarks schemas helm
	$(BIN)/ruff format ingestor tools tests benchmarks schemas helm

schemas: ## re-derive schemas/<Table>.json for every table from the column references in schemas/source/*.json
	$(PYTHON) schemas/derive.py

# requirements.lock pins requirements.in (both distributions and the dev extra); requirements-runtime.lock is the
# image's (Dockerfile): the ingestor's own dependencies only, at requirements.lock's pins.
lock: $(STAMP) ## re-resolve requirements.lock and requirements-runtime.lock from pyproject.toml and tools/
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --generate-hashes -o requirements.lock \
		--no-emit-package defender-ingestor --no-emit-package defender-ingestor-tools
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -c requirements.lock \
		-o requirements-runtime.lock

fuzz: install ## property-based fuzz campaign: decoder and flow under hostile input, outcome counts at the end
	FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),100000) $(BIN)/pytest -p no:cacheprovider -q --timeout=0 tests/test_fuzz.py $(PYTEST_ARGS)

bench: install ## floor, baseline and ingestor on the same input; figures in benchmarks/results/latest.json
	$(BIN)/python benchmarks/harness.py $(BENCH_ARGS)

bench-outage: install ## a 3-minute sink outage under full input: peak RSS and catch-up time
	$(BIN)/python benchmarks/outage.py

bench-oversized: install ## oversized records and messages amid valid traffic: peak RSS, dead-letter size
	$(BIN)/python benchmarks/oversized.py $(BENCH_ARGS)

bench-retention: install ## hot-path cost of retention classes: one class vs rules by table vs predicate + Auxiliary
	$(BIN)/python benchmarks/retention.py $(BENCH_ARGS)

helm-docs: $(STAMP) ## write helm/ingestor/README.md from the comments in values.yaml
	$(BIN)/python helm/readme.py

clean: ## remove the venv and generated output
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
