"""Search semantics and ranking on a real index: golden queries, phrases, AND, escaping."""

from __future__ import annotations

import pytest

from indexer import QueryError, Searcher

from .conftest import DATA, load_golden


@pytest.mark.parametrize(("query", "top_id"), load_golden(DATA / "queries.tsv"))
def test_golden_top_hit(searcher: Searcher, query: str, top_id: str) -> None:
    page = searcher.search(query)
    assert page.hits, f"no hits for {query!r}"
    assert page.hits[0].id == top_id


def test_space_separated_words_are_anded(searcher: Searcher) -> None:
    page = searcher.search("飞桨 开源", mode="all")
    assert {h.id for h in page.hits} == {"ernie"} and not page.relaxed
    assert page.total == page.total_full == 1


def test_a_short_page_continues_with_articles_that_have_some_words(searcher: Searcher) -> None:
    page = searcher.search("模型 专家")
    assert (page.total_full, page.total) == (1, 3) and not page.relaxed
    assert page.hits[0].id == "moe-intro" and page.hits[0].missing == []
    assert sorted(h.missing for h in page.hits[1:]) == [["专家"], ["模型"]]
    # The same query pages the same way at any page size.
    assert [h.id for h in searcher.search("模型 专家", size=1, page=2).hits] == [page.hits[1].id]


def test_when_no_document_has_every_word_some_words_are_enough(searcher: Searcher) -> None:
    page = searcher.search("飞桨 Kubernetes")
    assert page.total_full == 0 and not page.relaxed
    assert {h.id for h in page.hits} == {"ernie", "k8s"}
    assert {tuple(h.missing) for h in page.hits} == {("Kubernetes",), ("飞桨",)}
    # Explicit syntax is never loosened, and mode=all never fills.
    assert searcher.search('"飞桨 Kubernetes"').total == 0
    assert searcher.search("飞桨 Kubernetes", mode="all").total == 0


def test_a_required_word_is_never_missing(searcher: Searcher) -> None:
    page = searcher.search("+飞桨 Kubernetes")
    assert [h.id for h in page.hits] == ["ernie"] and page.hits[0].missing == ["Kubernetes"]


def test_compound_word_is_found_inside_longer_words(searcher: Searcher) -> None:
    # 大模型 is split by jieba; the query must still find 文心大模型.
    ids = {h.id for h in searcher.search("大模型").hits}
    assert "ernie" in ids


def test_quoted_phrase_matches_adjacent_text_only(searcher: Searcher) -> None:
    loose = {h.id for h in searcher.search("混合 专家").hits}
    assert loose == {"moe-intro", "hybrid-car"}
    assert [h.id for h in searcher.search('"混合专家"').hits] == ["moe-intro"]


def test_adjacent_match_ranks_above_scattered_words(searcher: Searcher) -> None:
    assert [h.id for h in searcher.search("混合专家").hits][0] == "moe-intro"


def test_title_matches_rank_above_body_matches(searcher: Searcher) -> None:
    # 开源 is in ernie's title and only in bodies elsewhere.
    hits = searcher.search("开源").hits
    assert hits[0].id == "ernie"


def test_hits_carry_fields_and_highlights(searcher: Searcher) -> None:
    hit = searcher.search("ERNIE 4.5").hits[0]
    assert hit.id == "ernie"
    assert hit.url == "https://news.example.com/ernie-45"
    assert hit.date == "2025-06-30"
    assert hit.source == "开源观察"
    assert hit.tags == ["大模型", "开源"]
    assert "<mark>4.5</mark>" in hit.title_html
    assert "<mark>ERNIE</mark> <mark>4.5</mark>" in hit.snippet_html
    assert hit.score > 0


def test_script_in_a_document_comes_back_inert(searcher: Searcher) -> None:
    hit = searcher.search("GPT-4o").hits[0]
    assert "<script>" not in hit.snippet_html
    # A snippet shows the text without its markup: the tags are gone, what they held is escaped text.
    html = searcher.search("script").hits[0].snippet_html
    assert "<script" not in html and "&lt;script" not in html and "alert" in html


def test_paging(searcher: Searcher) -> None:
    first = searcher.search("大模型 OR 汽车 OR Python", page=1, size=2)
    second = searcher.search("大模型 OR 汽车 OR Python", page=2, size=2)
    assert first.total == second.total >= 3
    assert len(first.hits) == 2
    assert not {h.id for h in first.hits} & {h.id for h in second.hits}
    far = searcher.search("大模型", page=50, size=10)
    assert far.hits == [] and far.total > 0


@pytest.mark.parametrize("query", ['"未闭合', "a)", "(((", "title:", "：", "AND", '""'])
def test_malformed_syntax_never_raises(searcher: Searcher, query: str) -> None:
    searcher.search(query)


@pytest.mark.parametrize(("kwargs", "message"), [({"page": 0}, "page"), ({"size": 0}, "size"), ({"size": 101}, "size")])
def test_bad_parameters_raise_query_error(searcher: Searcher, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        searcher.search("飞桨", **kwargs)


def test_empty_query_is_an_error(searcher: Searcher) -> None:
    with pytest.raises(QueryError):
        searcher.search("   ")
