"""The shipped corpus/: every article indexes, and golden queries find the right one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer import Searcher, build_index

from .conftest import DATA, ROOT, load_golden


@pytest.fixture(scope="module")
def corpus_searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    index = tmp_path_factory.mktemp("corpus") / "index"
    stats = build_index([ROOT / "corpus"], index)
    assert stats.indexed >= 40
    # Only the corpus README is skipped: it documents the formats.
    assert [(s.origin, s.reason) for s in stats.skipped] == [("README.md", "README files are not indexed")]
    assert not stats.warnings
    s = Searcher(index)
    yield s
    s.close()


def test_every_article_has_all_fields(corpus_searcher: Searcher) -> None:
    page = corpus_searcher.search("大模型 OR 开源 OR 发布 OR 芯片 OR 的", size=100)
    assert page.total >= 40
    for hit in page.hits:
        assert hit.title and hit.date and hit.source and hit.tags and hit.url.startswith("https://")


@pytest.mark.parametrize(("query", "top_id"), load_golden(DATA / "corpus_queries.tsv"))
def test_corpus_golden(corpus_searcher: Searcher, query: str, top_id: str) -> None:
    hits = corpus_searcher.search(query).hits
    assert hits and hits[0].id == top_id


def test_a_version_finds_its_patch_releases(corpus_searcher: Searcher) -> None:
    # The article writes 5.6.0 and 5.6.1; the pieces of 5.6, side by side, find them with every word.
    page = corpus_searcher.search("xz 5.6")
    assert not page.relaxed
    assert [h.id for h in page.hits] == ["xz-backdoor-postmortem"]


def test_moe_query_highlights(corpus_searcher: Searcher) -> None:
    page = corpus_searcher.search("混合专家")
    assert page.total >= 3
    assert all("<mark>" in h.snippet_html for h in page.hits[:3])


def test_jsonl_and_markdown_both_present() -> None:
    corpus = Path(ROOT / "corpus")
    assert list(corpus.glob("*.jsonl"))
    assert len(list((corpus / "posts").glob("*.md"))) >= 10
