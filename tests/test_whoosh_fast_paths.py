"""zhsearch's shortcuts around Whoosh give exactly what Whoosh itself would.

The Whoosh backend computes BM25 length norms once per open index, counts
facets from values it reads once per open index, and counts the total in the
same pass as the ranking. Each is compared here with Whoosh's own way on a
real index.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from whoosh import scoring, sorting
from whoosh.collectors import FacetCollector, TopCollector, UnlimitedCollector
from whoosh.searching import Searcher as WhooshSearcher

from indexer import Searcher, build_index
from indexer.backends.whoosh import query as whoosh_query
from indexer.backends.whoosh import scoring as whoosh_scoring
from indexer.backends.whoosh.query import compile_request_query
from indexer.backends.whoosh.units import TIER
from indexer.plan import FILL_BELOW
from indexer.query import parse_query
from indexer.store import FACETS, SearchRequest

from .random_docs import SOURCES, TAGS, write_random_docs

QUERIES = ["研究", "语言 经济", "技术 -安全", "学术研究对地区经济发展的影响是什么", '"开源 社区" OR 标准']


def _build(tmp_path_factory: pytest.TempPathFactory, deleted: int = 0) -> Searcher:
    root = tmp_path_factory.mktemp("fast")
    build_index([write_random_docs(root / "docs.jsonl", 400, seed=11, with_meta=True)], root / "index")
    s = Searcher(root / "index")
    if deleted:
        # Deleted documents stay in the postings until a merge; they must not come back.
        s.store.delete(f"d{i}" for i in range(0, 400, 400 // deleted))
    return s


@pytest.fixture(autouse=True, params=["stock", "term-cache"])
def term_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test also with every word's scores and blocks cached (the caches hold words in 1,000
    documents and more, which these 400 have none of), in caches small enough to drop some as they go."""
    if request.param == "stock":
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        for module in (whoosh_scoring, whoosh_query):
            patch.setattr(module, "CACHE_MIN_POSTINGS", 1)
        patch.setattr(whoosh_scoring, "CACHE_POSTINGS", 300)
        patch.setattr(whoosh_scoring, "CACHE_PER_DOCUMENT", 0)
        # Phrases' blocks too: directories and decoded blocks kept, and dropped as the small budgets fill.
        patch.setattr(whoosh_scoring, "BLOCK_CACHE_POSTINGS", 300)
        patch.setattr(whoosh_scoring, "BLOCK_CACHE_PER_DOCUMENT", 0)
        patch.setattr(whoosh_scoring, "BLOCK_DIRECTORIES", 5)
        yield


@pytest.fixture(scope="module", params=[0, 40], ids=["intact", "with-deletions"])
def searcher(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    s = _build(tmp_path_factory, deleted=request.param)
    yield s
    s.close()


@pytest.mark.parametrize("q", QUERIES)
def test_scores_equal_whoosh_bm25f(searcher: Searcher, q: str) -> None:
    store = searcher.store
    # "all" for keywords, so that only full matches come back. A question keeps "auto" ("all" would
    # leave none), filled as the store fills it; each score is then BM25 plus its tier.
    mode = "auto" if q.endswith("什么") else "all"
    page = store.search(SearchRequest(query=parse_query(q), page=1, size=400, mode=mode))
    ours = store._get_searcher()  # type: ignore[attr-defined]
    plain = WhooshSearcher(ours.reader(), weighting=scoring.BM25F(B=0.75, K1=1.2), closereader=False)
    try:
        full = plain.search(compile_request_query(parse_query(q), mode=mode, fill_below=FILL_BELOW), limit=None)
        expected = {hit["id"]: hit.score % TIER for hit in full}
    finally:
        plain.close()
    got = {hit.doc.id: hit.score for hit in page.hits}
    assert got.keys() == expected.keys() and got
    if store.info().documents < 400:
        assert not any(int(k[1:]) % 10 == 0 for k in got)
    assert all(got[k] == pytest.approx(expected[k], rel=1e-12) for k in got)
    assert page.total == len(expected)


def test_length_norms_read_at_once_equal_whooshs(searcher: Searcher) -> None:
    # Every document's norm comes from one read of the lengths column, equal to Whoosh's own
    # per-document lookup, in every segment (the with-deletions index has a second one).
    ours = searcher.store._get_searcher()  # type: ignore[attr-defined]
    for fieldname in ("content", "content_bi", "title"):
        avgfl = ours.avg_field_length(fieldname)
        for leaf, _ in ours.leaf_searchers():
            norms = whoosh_scoring._all_norms(leaf, fieldname, 0.75, 1.2, avgfl)
            assert len(norms) == leaf.doc_count_all()
            read = 0
            for docnum in range(leaf.doc_count_all()):
                length = leaf.doc_field_length(docnum, fieldname, 1)
                if length:
                    assert norms[docnum] == 1.2 * ((1 - 0.75) + 0.75 * length / avgfl)
                    read += 1
            assert read


@pytest.mark.parametrize("q", QUERIES)
def test_facet_counts_equal_whoosh_facets(searcher: Searcher, q: str) -> None:
    store = searcher.store
    page = store.search(SearchRequest(query=parse_query(q), page=1, size=10, facets=FACETS))
    ours = store._get_searcher()  # type: ignore[attr-defined]
    facets = {
        "source": sorting.FieldFacet("source"),
        "tags": sorting.FieldFacet("tags", allow_overlap=True),
    }
    collector = FacetCollector(UnlimitedCollector(), facets, maptype=sorting.Count)
    ours.search_with_collector(compile_request_query(parse_query(q), fill_below=FILL_BELOW), collector)
    results = collector.results()
    for name in ("source", "tags"):
        counts = [(str(k), v) for k, v in results.groups(name).items() if k not in (None, "")]
        expected = sorted(counts, key=lambda kv: (-kv[1], kv[0]))[:20]
        assert page.facets[name] == expected
    assert sum(n for _, n in page.facets["source"]) <= page.total


@pytest.mark.parametrize("q", ["学术研究对地区经济发展的影响是什么", "语言 经济"])
def test_pages_follow_one_ranking(searcher: Searcher, q: str) -> None:
    # The best 50 hits are reordered by word proximity; pages before, across
    # and after that block must still read as one list.
    whole = [h.id for h in searcher.search(q, page=1, size=80).hits]
    paged = [h.id for n in range(1, 9) for h in searcher.search(q, page=n, size=10).hits]
    assert len(whole) > 10
    assert paged == whole[: len(paged)] and len(paged) == min(80, len(whole))


# A question, keywords, and keywords narrowed by filters and exclusions: the store ranks these from the
# units' finished scores without Whoosh's collector (``WhooshStore._search_units``).
ORDERED = [
    "学术研究对地区经济发展的影响是什么",
    "研究",
    "技术 -安全",
    f"语言 source:{SOURCES[0]}",
    f"经济 tag:{TAGS[0]} -研究",
]


@pytest.mark.parametrize("q", ORDERED)
def test_pages_rank_as_whoosh_collects(searcher: Searcher, q: str) -> None:
    store = searcher.store
    page = store.search(SearchRequest(query=parse_query(q), page=1, size=400))
    ours = store._get_searcher()  # type: ignore[attr-defined]
    collector = TopCollector(limit=400, usequality=False, replace=0)
    ours.search_with_collector(compile_request_query(parse_query(q), fill_below=FILL_BELOW), collector)
    # Whoosh's AND NOT over the units lets an excluded document through now and then (经济 tag:经济
    # -研究 keeps d5, which has 研究): the excluded word's documents are taken out of its list here.
    excluded = {h.doc.id for h in store.search(SearchRequest(query=parse_query("研究"), page=1, size=400)).hits}
    expected = [hit["id"] for hit in collector.results() if "-研究" not in q or hit["id"] not in excluded]
    assert [hit.doc.id for hit in page.hits] == expected and expected
    assert page.total == len(expected)
    assert page.total_full is not None and page.total_full <= page.total


@pytest.mark.parametrize("q", ["学术研究对地区经济发展的影响是什么", "研究 经济 技术 语言 历史", "技术"])
def test_a_short_page_has_the_scores_of_the_whole_list(searcher: Searcher, q: str) -> None:
    # A page of 10 reads only the best 10 in full (``MatchUnits._bar``): a question's common words and
    # extras are scored for the documents that can still reach them. Each page must be the same
    # slice, with the same scores, as the list scored in full.
    store = searcher.store
    whole = store.search(SearchRequest(query=parse_query(q), page=1, size=400)).hits
    assert len(whole) > 30
    for page in (1, 2, 3):
        hits = store.search(SearchRequest(query=parse_query(q), page=page, size=10)).hits
        expected = whole[(page - 1) * 10 : page * 10]
        assert [h.doc.id for h in hits] == [h.doc.id for h in expected]
        assert [h.score for h in hits] == [h.score for h in expected]


def test_blocks_read_as_whoosh_reads_them(searcher: Searcher) -> None:
    """``read_block`` (positions unpickled through str.encode) gives every block's ids, weights and
    positions exactly as Whoosh's own block reader does, for the terms of the body and the title."""
    top = searcher.store._get_searcher()  # type: ignore[attr-defined]
    checked = 0
    for leaf, _ in top.leaf_searchers():
        reader = leaf.reader()
        for fieldname in ("content", "title"):
            for text in list(reader.lexicon(fieldname))[:200]:
                ours, theirs = reader.postings(fieldname, text), reader.postings(fieldname, text)
                if reader.deleted_docs_set:
                    ours, theirs = ours.child, theirs.child
                while theirs.is_active():
                    whoosh_scoring.read_block(ours)
                    theirs._read_ids()
                    ours._read_weights()
                    theirs._read_weights()
                    ours._read_values()
                    theirs._read_values()
                    assert (ours._ids, ours._weights, ours._values) == (theirs._ids, theirs._weights, theirs._values)
                    assert all(type(v) is bytes for v in ours._values)
                    checked += 1
                    ours._next_block()
                    theirs._next_block()
    assert checked > 100


def test_phrases_read_from_kept_blocks_match_whoosh(searcher: Searcher) -> None:
    """Phrases of the commonest words (several postings blocks each), matched twice on one searcher:
    the second time through the blocks' directories and decoded blocks kept by the first (with the
    term-cache parameter; stock, by Whoosh's leapfrog). Documents and scores are Whoosh's Phrase's."""
    from whoosh import query as wq

    top = searcher.store._get_searcher()  # type: ignore[attr-defined]
    reader = top.reader()
    common = sorted(reader.lexicon("content"), key=lambda t: -reader.doc_frequency("content", t))[:4]
    words = [t.decode("utf-8") for t in common]
    assert reader.doc_frequency("content", common[0]) > 128  # more than one block
    phrases = [[words[0], words[1]], [words[1], words[0]], [words[2], words[0], words[3]], [words[0], words[0]]]
    ours = WhooshSearcher(reader, weighting=whoosh_scoring.CachedBM25F(B=0.75, K1=1.2), closereader=False)
    plain = WhooshSearcher(reader, weighting=scoring.BM25F(B=0.75, K1=1.2), closereader=False)
    try:
        matched = 0
        for _ in range(2):
            for phrase in phrases:
                got = {h["id"]: h.score for h in ours.search(whoosh_query.ExactPhrase("content", phrase), limit=None)}
                want = {h["id"]: h.score for h in plain.search(wq.Phrase("content", phrase), limit=None)}
                assert got.keys() == want.keys()
                assert all(got[k] == pytest.approx(want[k], rel=1e-9) for k in got)
                matched += len(got)
        assert matched
    finally:
        ours.close()
        plain.close()
