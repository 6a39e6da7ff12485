# Two entry points, both self-contained on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup serve test lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

serve: setup
	$(BIN)/codeyard serve

lint: setup
	$(BIN)/ruff check codeyard tests bench
	$(BIN)/ruff format --check codeyard tests bench
	$(BIN)/mypy

test: setup lint
	bash scripts/ensure-postgres.sh
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/run_all.py
