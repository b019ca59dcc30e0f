# `make demo`: virtualenv, install, run every scenario of the scheduling guide, exit.
# `make dev`: the same server, worker and crons, kept running (Ctrl-C stops them).
# `make test`: virtualenv, install with the dev extra, lint (ruff check and ruff format --check),
# type-check, run the suite (two test files at a time, then the serial ones).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo dev test lint typecheck pytest clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python demo.py

dev: $(STAMP)
	$(BIN)/kitcn-temporal dev

LINTED := kitcn_temporal tests bench activities workflows demo.py

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy --strict kitcn_temporal
	$(BIN)/mypy activities workflows bench demo.py

# The suite in two parts: test files two at a time (pytest-xdist, each process with its own
# Temporal dev server), then the files marked `serial` (timing bounds, or all the CPU) alone.
# A part that selects no test (pytest's exit status 5) is not a failure. PYTEST_WORKERS=0 runs
# the first part in one process.
PYTEST_WORKERS ?= 2

pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .kitcn .pytest_cache .mypy_cache .ruff_cache
