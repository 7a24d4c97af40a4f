"""Shared fixtures: a real Whoosh index over the mini corpus, built once per session."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from indexer import Searcher, build_index, init_jieba
from service import create_app

DATA = Path(__file__).parent / "data"
MINI_CORPUS = DATA / "mini_corpus"
ROOT = Path(__file__).parent.parent


def load_golden(path: Path) -> list[tuple[str, str]]:
    """(query, expected top id) pairs from a TSV file with a header row."""
    with open(path, encoding="utf-8", newline="") as f:
        return [(row["query"], row["top_id"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="session", autouse=True)
def _jieba() -> None:
    init_jieba()


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real index over the mini corpus (jieba start-up is slow, so build it once)."""
    out = tmp_path_factory.mktemp("mini") / "index"
    stats = build_index([MINI_CORPUS], out)
    assert stats.indexed == 8, stats.skipped
    return out


@pytest.fixture(scope="session")
def searcher(index_dir: Path) -> Iterator[Searcher]:
    s = Searcher(index_dir)
    yield s
    s.close()


@pytest.fixture
def app(index_dir: Path) -> Flask:
    return create_app({"TESTING": True, "INDEX_DIR": str(index_dir), "PER_PAGE": 3})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
