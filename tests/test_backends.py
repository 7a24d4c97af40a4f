"""The same golden queries, search semantics and API on every backend: Whoosh and a real Typesense cluster.

The Typesense cases start a 3-node cluster on loopback (``cluster`` marker,
``make test-cluster``); the Whoosh cases run in the default ``make test``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from indexer import Searcher, SuggesterCache, build_index, open_store, store_settings
from indexer.backends.typesense import COLLECTION_ENV
from service import create_app

from .conftest import BACKENDS, DATA, MINI_CORPUS, backend_environment, load_golden


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend name, with ZHSEARCH_BACKEND (and the cluster's settings) in the environment."""
    with backend_environment(request, "zhsearch_test_backends") as name:
        yield name


@pytest.fixture(scope="module")
def built(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index directory (Whoosh; unused by Typesense, which reads the cluster from the environment)."""
    out = tmp_path_factory.mktemp(f"idx-{backend}") / "index"
    stats = build_index([MINI_CORPUS], store_settings(out, backend))
    assert stats.indexed == 8
    return out


@pytest.fixture(scope="module")
def searcher(backend: str, built: Path) -> Iterator[Searcher]:
    s = Searcher(store_settings(built, backend))
    assert s.store.info().backend == backend
    yield s
    s.close()


@pytest.fixture
def client(backend: str, built: Path) -> Iterator[FlaskClient]:
    # create_app picks the backend from ZHSEARCH_BACKEND and the ZHSEARCH_TYPESENSE_* variables set by `backend`.
    app = create_app({"TESTING": True, "INDEX_DIR": str(built), "PER_PAGE": 3})
    searcher = app.extensions["zhsearch.searcher"]
    assert searcher.store.backend == backend
    yield app.test_client()
    # A Typesense store keeps connections open; one app per test would leak them until the end of the run.
    searcher.close()


@pytest.mark.parametrize(("query", "top_id"), load_golden(DATA / "queries.tsv"))
def test_golden_top_hit(searcher: Searcher, query: str, top_id: str) -> None:
    page = searcher.search(query)
    assert page.hits, f"no hits for {query!r}"
    assert page.hits[0].id == top_id


# Queries whose matching documents are decided by the query language, not by ranking.
SAME_MATCHES = [
    ("飞桨 开源", {"ernie"}),
    ("混合 专家", {"moe-intro", "hybrid-car"}),
    ('"混合专家"', {"moe-intro"}),
    ("大模型", {"ernie", "moe-intro"}),
    ("大模型 NOT 汽车", {"ernie", "moe-intro"}),
    ("大模型 -MoE", {"ernie"}),
    ("(大模型 OR 汽车) 混合", {"moe-intro", "hybrid-car"}),
    ("title:专家", {"moe-intro"}),
    ("source:开源观察", {"ernie"}),
    ("tag:MoE", {"moe-intro"}),
    ("大模型 date:2025-06", {"ernie"}),
    ("python3", {"python312"}),
    ("C++", {"gpt4o.txt"}),
    ("C#", {"gpt4o.txt"}),
]


@pytest.mark.parametrize(("query", "expected"), SAME_MATCHES)
def test_matching_documents(searcher: Searcher, query: str, expected: set[str]) -> None:
    page = searcher.search(query, size=20, mode="all")
    assert {h.id for h in page.hits} == expected
    assert page.total == len(expected)


# Identifiers and versions match as units: whole, or their pieces side by side in any spelling
# (22-04, x86 64), never pieces scattered through the text.
IDENTIFIER_DOCS = [
    ("jammy", "在 Ubuntu 22.04 上安装 Docker", "Ubuntu 22.04 LTS 的代号是 Jammy。"),
    ("iso", "镜像文件", "下载 ubuntu-22.04-live-server-amd64.iso 后校验。"),
    ("apart", "Ubuntu 20.04 的 22 个技巧", "第 04 号补丁的说明。"),
    ("split", "Ubuntu 安装指南", "版本 22.04 的步骤。"),
    ("x86", "x86_64 架构", "x86_64 是 64 位扩展。"),
    ("x86-dash", "AMD64 的来历", "AMD 的 x86-64 指令集。"),
    ("x86-space", "寄存器", "在 x86 64 位模式下。"),
    ("coords", "坐标", "点 x 为 86，y 为 64。"),
]
SAME_IDENTIFIER_MATCHES = [
    ("Ubuntu 22.04", {"jammy", "iso", "split"}),
    ("22.04", {"jammy", "iso", "split"}),
    ("x86_64", {"x86", "x86-dash", "x86-space"}),
    ("x86-64", {"x86", "x86-dash", "x86-space"}),
    ("amd64", {"iso", "x86-dash"}),
    ("x86_64 OR 22.04", {"jammy", "iso", "split", "x86", "x86-dash", "x86-space"}),
]


@pytest.fixture(scope="module")
def identifiers(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    """A searcher over IDENTIFIER_DOCS, in its own index (its own collection on Typesense)."""
    work = tmp_path_factory.mktemp(f"identifiers-{backend}")
    corpus = work / "identifiers.jsonl"
    with open(corpus, "w", encoding="utf-8") as f:
        for doc_id, title, body in IDENTIFIER_DOCS:
            f.write(json.dumps({"id": doc_id, "title": title, "body": body}, ensure_ascii=False) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(COLLECTION_ENV, "zhsearch_test_identifiers")
        settings = store_settings(work / "index", backend)
    assert build_index([corpus], settings).indexed == len(IDENTIFIER_DOCS)
    s = Searcher(settings)
    yield s
    s.close()


@pytest.mark.parametrize(("query", "expected"), SAME_IDENTIFIER_MATCHES)
def test_identifiers_match_as_units(identifiers: Searcher, query: str, expected: set[str]) -> None:
    page = identifiers.search(query, size=20, mode="all")
    assert {h.id for h in page.hits} == expected
    assert page.total == len(expected)


def test_or_query_pages_without_overlap(searcher: Searcher) -> None:
    first = searcher.search("大模型 OR 汽车 OR Python", page=1, size=2)
    second = searcher.search("大模型 OR 汽车 OR Python", page=2, size=2)
    assert first.total == second.total >= 3
    assert len(first.hits) == 2
    assert not {h.id for h in first.hits} & {h.id for h in second.hits}


def test_question_ranks_the_article_about_it_first(searcher: Searcher) -> None:
    page = searcher.search("为什么混合专家模型能让大模型更便宜地训练和推理")
    assert page.hits[0].id == "moe-intro"


# A long question typed in three chunks, as the CMRC benchmark has them: Typesense 0.24 refuses a filter
# of more than 100 conditions, operators and parentheses, and its words in two fields once made 101.
LONG_QUESTION = (
    "为什么混合专家模型能让大模型在不需要任何人手调整下更便宜地训练和推理 "
    "它又采用了什么样的方法 多种类型的硬件和怎样的调度？"
)


def test_a_long_question_fits_in_one_search(searcher: Searcher) -> None:
    page = searcher.search(LONG_QUESTION)
    assert page.hits[0].id == "moe-intro"


def test_too_many_separate_words_get_a_clear_answer(client: FlaskClient, backend: str) -> None:
    # 18 words typed apart, each required: Whoosh searches them; Typesense cannot say it in one filter.
    q = "大模型 混合 专家 开源 飞桨 汽车 训练 推理 模型 框架 硬件 部署 社区 稀疏 数据 算法 网络 系统"
    response = client.get("/api/search", query_string={"q": q})
    if backend == "typesense":
        assert response.status_code == 400
        assert "too many separate words" in response.get_json()["error"]["message"]
    else:
        assert response.status_code == 200


def test_suggestions_are_not_rebuilt_while_the_index_stays_the_same(searcher: Searcher) -> None:
    cache = SuggesterCache(searcher.store, recheck_s=0)
    first = cache.get()
    searcher.search("大模型")
    assert cache.get() is first


def test_filters_facets_and_date_sort(searcher: Searcher) -> None:
    page = searcher.search("大模型 OR Python", facets=True, sort="date", size=10)
    dates = [h.date for h in page.hits]
    assert dates == sorted(dates, reverse=True)
    assert dict(page.facets["tags"])["大模型"] == 2
    only = searcher.search("", sources=["开发者日报"])
    assert [h.id for h in only.hits] == ["python312"]


def test_a_chosen_source_leaves_the_others_listed_with_their_counts(searcher: Searcher) -> None:
    everything = searcher.search("大模型 OR Python", facets=True)
    sources = dict(everything.facets["source"])
    assert len(sources) >= 2
    first, second = sorted(sources)[:2]
    one = searcher.search("大模型 OR Python", facets=True, sources=[first])
    # Counted as if no source were chosen, so that a second one can be added ...
    assert dict(one.facets["source"]) == sources
    assert one.total == sources[first]
    # ... and two sources are alternatives: the articles of either.
    two = searcher.search("大模型 OR Python", facets=True, sources=[first, second])
    assert two.total == sources[first] + sources[second]
    assert dict(two.facets["source"]) == sources
    # The tag counts are those of the chosen sources (AND across facets).
    assert sum(n for _, n in two.facets["tags"]) <= sum(n for _, n in everything.facets["tags"])


@pytest.mark.parametrize("query", ["大模型 OR Python OR 汽车", "大模型", ""])
def test_a_deep_page_reads_the_ranking_from_the_top(searcher: Searcher, query: str) -> None:
    # Page 30 of 10 reads 310 hits from the top to fold near-duplicates: more than Typesense gives at once.
    page = searcher.search(query, page=30, size=10, sources=[] if query else ["开源观察"])
    assert page.total > 0 and page.hits == []
    assert not page.partial


def test_a_listing_by_source_alone_counts_every_source(searcher: Searcher) -> None:
    listing = searcher.search("", facets=True, sources=["开发者日报"])
    assert [h.id for h in listing.hits] == ["python312"]
    counts = dict(listing.facets["source"])
    assert len(counts) >= 3
    # Each count is that of the whole collection: what choosing the source instead would list.
    for source, count in counts.items():
        assert searcher.search("", sources=[source]).total == count


def test_highlights_come_from_the_original_text(searcher: Searcher) -> None:
    hit = searcher.search("ERNIE 4.5").hits[0]
    assert hit.id == "ernie" and hit.url == "https://news.example.com/ernie-45"
    assert hit.date == "2025-06-30" and hit.tags == ["大模型", "开源"]
    assert "<mark>4.5</mark>" in hit.title_html
    assert "<mark>ERNIE</mark> <mark>4.5</mark>" in hit.snippet_html


# 混合专家 typed as one run: Whoosh keeps its pieces side by side; Typesense does not yet, and
# also finds the article with 混合 and 专家 apart.
TYPED_RUN_TOTAL = {"whoosh": 1, "typesense": 2}


def test_api_search(client: FlaskClient, backend: str) -> None:
    data = client.get("/api/search", query_string={"q": "混合专家"}).get_json()
    assert data["total"] == TYPED_RUN_TOTAL[backend] and data["size"] == 3
    assert data["results"][0]["id"] == "moe-intro"
    assert "<mark>混合专家</mark>" in data["results"][0]["snippet_html"]


def test_api_script_is_escaped(client: FlaskClient) -> None:
    snippet = client.get("/api/search", query_string={"q": "script"}).get_json()["results"][0]["snippet_html"]
    # Snippets show the text without its markup; what is left is escaped text.
    assert "<script>" not in snippet and "&lt;script" not in snippet and "alert(&quot;x&quot;)" in snippet


def test_api_document_lookup_and_404(client: FlaskClient) -> None:
    doc = client.get("/api/documents/notes/rust.md").get_json()
    assert doc["id"] == "notes/rust.md" and doc["title"].startswith("Rust 1.80")
    missing = client.get("/api/documents/nope")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"


def test_api_healthz(backend: str, client: FlaskClient) -> None:
    health = client.get("/healthz").get_json()
    if backend == "typesense":
        # A cluster also says whether it can take writes, and each node's state.
        assert sorted(health.pop("nodes").values()) == ["follower", "follower", "leader"]
        assert health.pop("writable") is True
    assert health == {"status": "ok", "documents": 8, "warnings": []}


def test_api_malformed_query_is_not_a_server_error(client: FlaskClient) -> None:
    for q in ['"未闭合', "a)", "(((", "title:", "NOT", "-"]:
        assert client.get("/api/search", query_string={"q": q}).status_code < 500


def test_open_store_follows_the_environment(backend: str, built: Path) -> None:
    store = open_store(store_settings(built))
    try:
        assert store.info().backend == backend
    finally:
        store.close()


def test_environment_selects_backend(backend: str, built: Path) -> None:
    searcher = Searcher(store_settings(built))
    try:
        assert searcher.info().backend == backend
    finally:
        searcher.close()
