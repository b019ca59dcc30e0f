# `make demo`: virtualenv, install, run every scenario of the scheduling guide, exit.
# `make dev`: the same server, worker and crons, kept running (Ctrl-C stops them).
# `make test`: virtualenv, install with the dev extra, lint (ruff check and ruff format --check),
# type-check, run the suite.
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

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .kitcn .pytest_cache .mypy_cache .ruff_cache
