# zhsearch: `make serve` and `make test` do all set-up on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INDEX_DIR ?= instance/index
CORPUS ?= corpus
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
CORPUS_FILES := $(shell find $(CORPUS) -type f 2>/dev/null)
INDEX_STAMP := $(INDEX_DIR)/CURRENT/zhsearch.json

.PHONY: serve test check lint format typecheck index bench clean

# python3-venv is a separate Debian package; install it only when venv is missing.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

# Rebuild only when the index is missing or older than a corpus file.
$(INDEX_STAMP): $(CORPUS_FILES) | $(VENV)/.installed
	$(BIN)/zhsearch build --index $(INDEX_DIR) $(CORPUS)

index: $(INDEX_STAMP)

serve: $(VENV)/.installed $(INDEX_STAMP)
	$(BIN)/zhsearch serve --index $(INDEX_DIR) --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy indexer service

check: lint typecheck test

clean:
	rm -rf $(VENV) instance build *.egg-info
