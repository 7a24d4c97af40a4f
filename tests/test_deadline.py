"""One deadline per request: the relaxed retry, "did you mean", completions and highlighting share it.

Also what keeps the worst queries inside it on the Whoosh backend (its phrase
and AND matchers, checked here against Whoosh's own answers), date sorting
with undated documents, and facet counts over a record with 100,000 tags.
The same limits over HTTP, on the 8,682 shared articles, are in
``test_worst_cases.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from whoosh import query as wq
from whoosh import scoring
from whoosh.collectors import TopCollector
from whoosh.searching import Searcher as WhooshSearcher
from whoosh.searching import TimeLimit

from indexer import Searcher, Suggester, build_index, open_store, suggest_query
from indexer.backends.whoosh.query import AllOf, ExactPhrase, compile_request_query
from indexer.corpus import Article
from indexer.highlight import highlight_all, snippet
from indexer.query import parse_query
from indexer.schema import CONTENT, TITLE
from indexer.search import request_deadline
from indexer.store import FACETS, IndexStore, RawPage, SearchRequest
from service import create_app

from .random_docs import WORDS, write_random_docs


class RecordingStore:
    """The real store, with every request sent through the seam recorded (and ``after`` run on each)."""

    def __init__(self, store: IndexStore, after: Callable[[SearchRequest], None] | None = None) -> None:
        self.store = store
        self.after = after
        self.requests: list[SearchRequest] = []

    def search(self, request: SearchRequest) -> RawPage:
        self.requests.append(request)
        page = self.store.search(request)
        if self.after is not None:
            self.after(request)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _recording(index_dir: Path) -> tuple[Searcher, RecordingStore]:
    store = RecordingStore(open_store(index_dir))
    return Searcher(index_dir, store=store), store  # type: ignore[arg-type]


def _sleep_past_deadline(request: SearchRequest) -> None:
    # A store that found its hits just as the time ran out.
    assert request.deadline is not None
    time.sleep(max(0.0, request.deadline - time.monotonic()) + 0.01)


# -- one deadline through the library ---------------------------------------


def test_the_relaxed_retry_keeps_the_first_searchs_deadline(index_dir: Path) -> None:
    searcher, store = _recording(index_dir)
    deadline = time.monotonic() + 60
    page = searcher.search("专家混合", deadline=deadline)
    assert page.relaxed and not page.partial
    assert len(store.requests) == 2
    assert [r.deadline for r in store.requests] == [deadline, deadline]
    # A time limit becomes one deadline too: the retry does not start a fresh limit.
    store.requests.clear()
    searcher.search("专家混合", time_limit=60)
    assert len(store.requests) == 2 and store.requests[0].deadline == store.requests[1].deadline
    searcher.close()


def test_no_time_left_means_no_retry_and_a_partial_answer(index_dir: Path) -> None:
    searcher, store = _recording(index_dir)
    started = time.monotonic()
    page = searcher.search("飞桨 Kubernetes", deadline=started - 1)
    assert page.partial and not page.relaxed and page.total == 0
    assert len(store.requests) == 1
    assert time.monotonic() - started < 1
    searcher.close()


def test_the_earlier_of_time_limit_and_deadline_counts() -> None:
    now = time.monotonic()
    assert request_deadline() is None
    assert request_deadline(deadline=now + 5) == now + 5
    assert request_deadline(time_limit=100, deadline=now + 5) == now + 5
    assert now + 1 <= (request_deadline(time_limit=1, deadline=now + 100) or 0) < now + 100
    assert request_deadline(time_limit=0, deadline=now + 5) == now + 5


def test_hits_found_as_time_runs_out_keep_escaped_snippets(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        json.dumps({"id": "a", "title": "飞桨 <b>发布</b>", "body": "<script>x</script> 飞桨开源了新模型。"}) + "\n",
        encoding="utf-8",
    )
    build_index([corpus], tmp_path / "index")
    searcher, store = _recording(tmp_path / "index")
    searcher.search("飞桨")  # opens the index: the timed search below only searches
    store.after = _sleep_past_deadline
    page = searcher.search("飞桨", deadline=time.monotonic() + 1)
    assert page.partial and [h.id for h in page.hits] == ["a"]
    hit = page.hits[0]
    assert hit.title_html == "飞桨 &lt;b&gt;发布&lt;/b&gt;"
    # Snippets show the text without its markup; the title is shown as written, escaped.
    assert hit.snippet_html.startswith("x 飞桨开源")
    assert "<mark>" not in hit.snippet_html and "<" not in hit.snippet_html
    searcher.close()
    # With time to spare the same hit is highlighted.
    plain = Searcher(tmp_path / "index")
    marked = plain.search("飞桨", time_limit=60).hits[0]
    assert "<mark>飞桨</mark>" in marked.snippet_html and "<mark>飞桨</mark>" in marked.title_html
    plain.close()


def test_highlighting_past_the_deadline_marks_nothing_and_escapes_everything() -> None:
    past = time.monotonic() - 1
    assert snippet("<i>混合</i>专家 & 模型", {"混合"}, deadline=past) == "混合专家 &amp; 模型"
    assert highlight_all("混合 & 专家", {"专家"}, deadline=past) == "混合 &amp; 专家"
    assert highlight_all("混合 & 专家", {"专家"}, deadline=time.monotonic() + 60) == "混合 &amp; <mark>专家</mark>"


def test_suggestions_stop_when_the_deadline_has_passed(searcher: Searcher) -> None:
    runs: list[str] = []

    def count(q: str) -> int:
        runs.append(q)
        return 1

    suggester = Suggester.from_store(searcher.store)
    assert suggest_query("飞桨 彗星", ["飞桨", "彗星"], suggester, count, deadline=time.monotonic() - 1) is None
    assert runs == []
    found = suggest_query("飞桨 彗星", ["飞桨", "彗星"], suggester, count, deadline=time.monotonic() + 60)
    assert found is not None and runs


# -- one deadline per HTTP request ------------------------------------------


@pytest.fixture
def recorded_client(index_dir: Path) -> Iterator[tuple[FlaskClient, RecordingStore]]:
    app = create_app({"TESTING": True, "INDEX_DIR": str(index_dir), "SEARCH_TIME_LIMIT": 60})
    searcher: Searcher = app.extensions["zhsearch.searcher"]
    store = RecordingStore(searcher.store)
    searcher.store = store  # type: ignore[assignment]
    yield app.test_client(), store
    store.store.close()


def test_the_page_its_retry_and_did_you_mean_share_one_deadline(
    recorded_client: tuple[FlaskClient, RecordingStore],
) -> None:
    client, store = recorded_client
    started = time.monotonic()
    html = client.get("/", query_string={"q": "飞桨彗星"}).get_data(as_text=True)
    assert "下面是只包含其中部分词的结果" in html and "去掉“彗星”" in html
    # The search, its relaxed retry, and the searches "did you mean" tried.
    assert len(store.requests) >= 3
    (deadline,) = {r.deadline for r in store.requests}
    assert deadline is not None and started + 59 < deadline <= time.monotonic() + 60
    # The next request has a deadline of its own.
    store.requests.clear()
    client.get("/api/search", query_string={"q": "飞桨 Kubernetes"})
    (later,) = {r.deadline for r in store.requests}
    assert later is not None and later > deadline


def test_completions_share_one_deadline(recorded_client: tuple[FlaskClient, RecordingStore]) -> None:
    client, store = recorded_client
    data = client.get("/api/suggest", query_string={"q": "dmx"}).get_json()
    assert "大模型" in [s["text"] for s in data["suggestions"]]
    assert store.requests
    assert len({r.deadline for r in store.requests}) == 1


def test_no_limit_configured_means_no_deadline(index_dir: Path) -> None:
    app = create_app({"TESTING": True, "INDEX_DIR": str(index_dir), "SEARCH_TIME_LIMIT": 0})
    searcher: Searcher = app.extensions["zhsearch.searcher"]
    store = RecordingStore(searcher.store)
    searcher.store = store  # type: ignore[assignment]
    assert app.test_client().get("/api/search", query_string={"q": "飞桨"}).status_code == 200
    assert [r.deadline for r in store.requests] == [None]
    store.store.close()


# -- the Whoosh matchers: bounded, on the clock, and equal to Whoosh's own ----


@pytest.fixture(scope="module", params=[0, 40], ids=["intact", "with-deletions"])
def random_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    root = tmp_path_factory.mktemp("deadline")
    build_index([write_random_docs(root / "docs.jsonl", 400, seed=7)], root / "index")
    s = Searcher(root / "index")
    if request.param:
        s.store.delete(f"d{i}" for i in range(0, 400, 400 // request.param))
    yield s
    s.close()


def _whoosh_scores(searcher: Searcher, q: Any) -> dict[str, float]:
    ours = searcher.store._get_searcher()  # type: ignore[attr-defined]
    plain = WhooshSearcher(ours.reader(), weighting=scoring.BM25F(B=0.75, K1=1.2), closereader=False)
    try:
        return {hit["id"]: hit.score for hit in plain.search(q, limit=None)}
    finally:
        plain.close()


A, B, C, D = WORDS[:4]
PHRASES = [
    [A, B],
    [B, A],
    [A, B, C],
    [A, A],
    [A, B, A],
    [A, A, A, A, A, A, A, A],
    [C, D, C, D, C, D],
    [A, "不存在的词"],
]


@pytest.mark.parametrize("words", PHRASES, ids=lambda w: "-".join(w))
@pytest.mark.parametrize("field", [CONTENT, TITLE])
def test_exact_phrase_matches_and_scores_as_whoosh_phrase(random_index: Searcher, words: list[str], field: str) -> None:
    ours = _whoosh_scores(random_index, ExactPhrase(field, words))
    theirs = _whoosh_scores(random_index, wq.Phrase(field, words))
    assert ours.keys() == theirs.keys()
    assert all(ours[k] == pytest.approx(theirs[k], rel=1e-9) for k in ours)


def test_the_phrases_compared_do_match(random_index: Searcher) -> None:
    # The comparison above means something: repeated words do stand side by side in these documents.
    assert _whoosh_scores(random_index, wq.Phrase(CONTENT, [A, A]))
    assert _whoosh_scores(random_index, wq.Phrase(CONTENT, [A, B]))


@pytest.mark.parametrize("words", [[A, B], [A, B, C], [A, B, C, D, WORDS[4]], [A, "不存在的词"]], ids=str)
def test_all_of_matches_and_scores_as_whoosh_and(random_index: Searcher, words: list[str]) -> None:
    ours = _whoosh_scores(random_index, AllOf([wq.Term(CONTENT, w) for w in words]))
    theirs = _whoosh_scores(random_index, wq.And([wq.Term(CONTENT, w) for w in words]))
    assert ours.keys() == theirs.keys()
    assert all(ours[k] == pytest.approx(theirs[k], rel=1e-9) for k in ours)


_TA, _TB, _PAB = wq.Term(CONTENT, A), wq.Term(CONTENT, B), wq.Phrase(CONTENT, [A, B])
# Words and phrases typed twice in one query are one unit (indexer.plan.plan_match), counted once;
# typed twice on either side of OR, each side counts, as in Whoosh.
REPEATS = [
    (f"{A} {A} {B}", wq.And([_TA, _TB])),
    (f"{A} OR {A} OR {B}", wq.Or([_TA, _TA, _TB])),
    (f'"{A} {B}" "{A} {B}" {A}', wq.And([_PAB, _TA])),
    (f'"{A} {B}" OR "{A} {B}"', wq.Or([_PAB, _PAB])),
]


@pytest.mark.parametrize(("q", "typed"), REPEATS, ids=[q for q, _ in REPEATS])
def test_repeated_words_are_read_once_with_the_same_scores(random_index: Searcher, q: str, typed: Any) -> None:
    page = random_index.store.search(SearchRequest(query=parse_query(q), size=400, mode="all"))
    ours = {h.doc.id: h.score for h in page.hits}
    # Whoosh's own AND / OR of the words as typed, each repeat counted.
    theirs = _whoosh_scores(random_index, typed)
    assert ours.keys() == theirs.keys() and ours
    assert all(ours[k] == pytest.approx(theirs[k], rel=1e-9) for k in ours)


@pytest.mark.parametrize("q", [f'"{A} {B} {C}"', f"{A} {B}", f"{A}{B}{C}{D}是什么", f'{A} -"{B} {C}"', f"{A} OR {B}"])
def test_the_matchers_stop_inside_their_scans(random_index: Searcher, q: str) -> None:
    # With no time left, building the matcher (where a phrase scans for its first
    # match) or the first step raises TimeLimit: not only the collector checks the clock.
    compiled = compile_request_query(parse_query(q), deadline=time.monotonic() - 1)
    searcher = random_index.store._get_searcher()  # type: ignore[attr-defined]
    with pytest.raises(TimeLimit):
        searcher.search_with_collector(compiled, TopCollector(limit=10, usequality=False, replace=0))


def test_a_store_search_with_no_time_left_is_partial(random_index: Searcher) -> None:
    request = SearchRequest(query=parse_query(f'"{A}{B}"'), deadline=time.monotonic() - 1, facets=FACETS)
    page = random_index.store.search(request)
    assert page.partial and page.hits == []
    assert random_index.store.search(SearchRequest(query=parse_query(f'"{A}{B}"'))).total > 0


# -- sort=date and facets ----------------------------------------------------


def test_sort_by_date_puts_undated_documents_last(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    dates = {"a": "2024-01-01", "b": None, "c": "2025-06-01", "d": None, "e": "2023-03-03", "f": "0001-01-01"}
    with open(corpus, "w", encoding="utf-8") as f:
        for doc_id, day in dates.items():
            record = {"id": doc_id, "title": f"测试 {doc_id}", "body": "测试 内容"}
            if day:
                record["date"] = day
            f.write(json.dumps(record) + "\n")
    build_index([corpus], tmp_path / "index")
    searcher = Searcher(tmp_path / "index")
    page = searcher.search("测试", sort="date")
    assert [h.id for h in page.hits] == ["c", "a", "e", "f", "b", "d"]
    pages = [h.id for n in (1, 2, 3) for h in searcher.search("测试", sort="date", page=n, size=2).hits]
    assert pages == ["c", "a", "e", "f", "b", "d"]
    searcher.close()


def test_sort_by_date_when_no_document_has_a_date(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    # Distinct titles: identical articles would fold into one result as near-duplicates.
    records = [{"id": f"d{i}", "title": f"测试 {i}", "body": "内容"} for i in range(3)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    build_index([corpus], tmp_path / "index")
    searcher = Searcher(tmp_path / "index")
    assert sorted(h.id for h in searcher.search("测试", sort="date").hits) == ["d0", "d1", "d2"]
    searcher.close()


@pytest.mark.slow
def test_facet_counts_over_a_record_with_100000_tags_stay_fast(tmp_path: Path) -> None:
    # The reader now refuses more than corpus.MAX_TAGS tags, but an index built
    # before that holds such records, so the record goes in through the store.
    store = open_store(tmp_path / "index")
    big = Article(id="big", title="标签很多的文章", body="测试 内容", tags=tuple(f"标签{i}" for i in range(100_000)))
    others = [Article(id=f"d{i}", title=f"测试 {i}", body="测试 内容", tags=("甲", "乙")) for i in range(20)]
    store.build([big, *others], [])
    store.close()
    searcher = Searcher(tmp_path / "index")
    searcher.search("测试")
    started = time.perf_counter()
    page = searcher.search("测试", facets=True)
    first = time.perf_counter() - started
    # Growing each document's tuple a tag at a time took over 5 minutes here; lists take seconds.
    assert first < 30, f"the first facet count took {first:.1f} s"
    assert page.total == 21
    assert page.facets["tags"][:3] == [("乙", 20), ("甲", 20), ("标签0", 1)]
    started = time.perf_counter()
    searcher.search("测试", facets=True, time_limit=5)
    assert time.perf_counter() - started < 5
    searcher.close()
