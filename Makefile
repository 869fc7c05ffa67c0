# Two commands matter: `make run` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test test-under-load lint check db-upgrade clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Reads .env when present (copy .env.example); the database defaults to ./jit-bot.db.
run: install
	set -a; [ ! -f .env ] || . ./.env; set +a; $(BIN)/jit-bot serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The whole suite RUNS times in a row (stopping at the first failure) while another
# process keeps every core busy, as a shared CI runner does: a test that depends on real
# seconds passing fails here. PYTEST_ARGS narrows it, e.g. PYTEST_ARGS=tests/e2e.
RUNS ?= 3
PYTEST_ARGS ?=
test-under-load: install
	@cores=$$(nproc); pids=""; \
	for i in $$(seq $$cores); do $(PYTHON) -c 'while True: pass' & pids="$$pids $$!"; done; \
	trap 'kill $$pids' EXIT INT TERM; \
	for run in $$(seq $(RUNS)); do \
		echo "== run $$run of $(RUNS), beside $$cores busy loop(s)"; \
		$(BIN)/pytest $(PYTEST_ARGS) || exit 1; \
	done

check: install
	set -a; [ ! -f .env ] || . ./.env; set +a; $(BIN)/jit-bot check

db-upgrade: install
	set -a; [ ! -f .env ] || . ./.env; set +a; $(BIN)/jit-bot db upgrade

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
