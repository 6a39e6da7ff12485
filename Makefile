# Two entry points, both self-contained on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UI_SRC := $(shell find ui -path ui/node_modules -prune -o -type f -print 2>/dev/null)

.PHONY: setup serve test lint bench ui clis

setup: $(VENV)/.installed ui

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The web UI, built from its lock file into the Python package (served at /).
ui: codeyard/web/index.html

codeyard/web/index.html: $(UI_SRC)
	@if [ -f ui/package.json ]; then \
		cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build; \
	fi

# Agent CLIs that only ship on npm (Gemini, Copilot, OpenCode, Qwen Code, Zed's ACP adapters for
# Codex and Claude Code), pinned by clis/package-lock.json.
clis: clis/node_modules/.installed

# `npm install` from the lock, not `npm ci`: Qwen Code's optional clipboard module lists binaries
# for other platforms that were never published (404), so no lock can hold them and `npm ci` calls
# the lock out of sync; `npm install` installs the same pinned tree and leaves the lock unchanged.
clis/node_modules/.installed: clis/package.json clis/package-lock.json
	cd clis && npm install --no-audit --no-fund --loglevel=error
	@touch $@

# `make serve PORT=8421 DATA_DIR=/tmp/cy` when the defaults do not suit.
serve: setup
	$(BIN)/codeyard serve $(if $(PORT),--port $(PORT)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

lint: setup
	$(BIN)/ruff check codeyard tests bench
	$(BIN)/ruff format --check codeyard tests bench
	$(BIN)/mypy

# The coverage floor: what the whole suite reached when it was set (90.5%), a little below.
# Raise it as coverage rises; never lower it.
COVERAGE_FLOOR := 89
# Test processes: most of the suite waits on agent CLIs, git and servers rather than the CPU,
# so three workers on two cores finish in about half the time of one (24.5 min sequentially).
# Files stay whole on one worker (their module fixtures and servers are not shared). Tests
# marked slow (real server processes killed and restarted, timing of crash recovery) run
# afterwards on their own: under three workers' load their restarts outran their time limits.
TEST_WORKERS ?= 3

test: setup lint clis
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-bubblewrap.sh
	bash scripts/ensure-espeak.sh
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" --cov --cov-report=
	$(BIN)/pytest -m slow --cov --cov-append --cov-report=term:skip-covered \
		--cov-fail-under=$(COVERAGE_FLOOR)

bench: setup
	$(BIN)/python bench/run_all.py
