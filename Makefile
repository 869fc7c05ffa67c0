# Two commands matter: `make run` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint check db-upgrade clean

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

check: install
	set -a; [ ! -f .env ] || . ./.env; set +a; $(BIN)/jit-bot check

db-upgrade: install
	set -a; [ ! -f .env ] || . ./.env; set +a; $(BIN)/jit-bot db upgrade

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
