"""Near-duplicates (a reprint, the same article in traditional characters) take one place in the results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from indexer import Searcher
from indexer.corpus import Article
from indexer.search import display_address
from service import create_app

from .conftest import DUPLICATES

RELEASE_GROUP = {"k8s-release", "k8s-reprint", "k8s-traditional"}


@pytest.fixture(scope="module")
def dup_searcher(duplicates_index: Path) -> Iterator[Searcher]:
    s = Searcher(duplicates_index)
    yield s
    s.close()


def test_near_duplicates_fold_into_the_best_of_them(dup_searcher: Searcher) -> None:
    page = dup_searcher.search("边车容器", size=10)
    ids = [h.id for h in page.hits]
    folded = {h.id: [s.id for s in h.similar] for h in page.hits}
    group = [hit_id for hit_id in ids if hit_id in RELEASE_GROUP]
    # One of the three is listed; the other two are under it, and nowhere else.
    assert len(group) == 1
    assert {group[0], *folded[group[0]]} == RELEASE_GROUP
    assert sum(len(v) for v in folded.values()) == 2
    # total keeps counting articles; the list has two entries fewer.
    assert page.total == len(ids) + 2
    assert page.listed == len(ids)


def test_paging_over_folded_duplicates_shows_every_article_once(dup_searcher: Searcher) -> None:
    whole = dup_searcher.search("Kubernetes", size=10)
    assert whole.total == len(DUPLICATES) and whole.listed == len(DUPLICATES) - 2
    seen: list[str] = []
    pages = dup_searcher.search("Kubernetes", size=2).pages
    assert pages == 3
    for n in range(1, pages + 1):
        page = dup_searcher.search("Kubernetes", size=2, page=n)
        assert page.hits, f"page {n} of {pages} is empty"
        seen += [h.id for h in page.hits] + [s.id for h in page.hits for s in h.similar]
    # Every article once, listed or folded; page by page, the entries of one long page, in its order.
    assert len(seen) == len(set(seen)) == len(DUPLICATES)
    assert [h.id for n in (1, 2, 3) for h in dup_searcher.search("Kubernetes", size=2, page=n).hits] == [
        h.id for h in whole.hits
    ]


@pytest.mark.parametrize(
    ("url", "origin", "roots", "shown"),
    [
        ("https://mirror.example.com/posts/k8s-130", "", [], "mirror.example.com/posts/k8s-130"),
        ("https://例子.cn/文章/%E8%BE%B9%E8%BD%A6/?utm=x#top", "", [], "例子.cn/文章/边车"),
        ("", "/srv/kb/notes/k8s/intro.md", ["/srv/kb"], "kb/notes/k8s/intro.md"),
        ("", "/srv/kb/notes/k8s/intro.md", ["/srv/kb/", "/srv/kb/notes"], "notes/k8s/intro.md"),
        ("", "/srv/data/articles.jsonl:12", ["/srv/data/articles.jsonl"], "articles.jsonl:12"),
        # Never the server's own directories, even for an index built from somewhere no longer listed.
        ("", "/home/op/private/a.md", ["/srv/kb"], "a.md"),
    ],
)
def test_the_address_under_a_title(url: str, origin: str, roots: list[str], shown: str) -> None:
    article = Article(id="x", title="t", body="b", url=url, origin=origin)
    assert display_address(article, roots) == shown


@pytest.fixture
def dup_client(duplicates_index: Path) -> FlaskClient:
    return create_app({"TESTING": True, "INDEX_DIR": str(duplicates_index), "PER_PAGE": 2}).test_client()


def test_api_lists_the_folded_articles_with_their_pages(dup_client: FlaskClient) -> None:
    data = dup_client.get("/api/search", query_string={"q": "边车容器", "size": 10}).get_json()
    head = next(r for r in data["results"] if r["similar"])
    assert {head["id"], *(s["id"] for s in head["similar"])} == RELEASE_GROUP
    for other in head["similar"]:
        assert list(other) == ["id", "title", "url", "doc_url", "date", "source"]
        assert dup_client.get(other["doc_url"]).status_code == 200
    addresses = {r["id"]: r["address"] for r in data["results"]}
    assert addresses["k8s-sidecar"] == "k8s.jsonl:5"


def test_api_pages_end_where_the_folded_list_ends(dup_client: FlaskClient) -> None:
    # 7 articles, 5 entries: pages of 2 end at page 3, where has_more turns false.
    third = dup_client.get("/api/search", query_string={"q": "Kubernetes", "page": 3}).get_json()
    assert third["total"] == 7 and len(third["results"]) == 1
    assert third["has_more"] is False and third["next"] is None


def test_the_page_shows_the_group_and_the_address(dup_client: FlaskClient) -> None:
    html = dup_client.get("/", query_string={"q": "边车容器", "size": 10}).get_data(as_text=True)
    assert "2 篇相似" in html
    assert '<p class="address" translate="no" title="k8s.jsonl:5">k8s.jsonl:5</p>' in html
    # The folded articles open their own pages from under the one listed.
    assert html.count('<details class="similar">') == 1
    assert html.count("/doc/k8s-") >= 4


def test_a_collection_of_copies_is_paged_in_one_search(tmp_path: Path) -> None:
    """Where most hits are copies, the searcher widens its first window from what it has seen, so a
    page needs one search of the index, not one per doubling; the pages are those of a fresh searcher."""
    import json

    from indexer import build_index

    lines = []
    for n in range(30):
        body = f"第{n}篇：容器编排系统的调度器把工作负载放到节点上，编号{n * 7919}。"
        lines += [json.dumps({"id": f"a{n}-{copy}", "title": f"调度器笔记{n}", "body": body}) for copy in range(4)]
    (tmp_path / "copies.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_index([tmp_path / "copies.jsonl"], tmp_path / "index")
    fresh_pages = {}
    for size in (20, 25):
        fresh = Searcher(tmp_path / "index")
        fresh_pages[size] = [h.id for h in fresh.search("调度器", size=size).hits]
        fresh.close()
    s = Searcher(tmp_path / "index")
    searches: list[int] = []
    real = s.store.search
    s.store.search = lambda request: searches.append(request.size) or real(request)  # type: ignore[method-assign]
    s.search("调度器", size=20)
    assert len(searches) > 1  # a fresh searcher reads 50 hits first: 13 distinct, short of 20
    for _ in range(8):
        s.search("工作负载", size=10)
    for size in (20, 25):
        searches.clear()
        page = s.search("调度器", size=size)
        assert len(searches) == 1, searches
        assert [h.id for h in page.hits] == fresh_pages[size]
    s.close()
