"""Searching: one ``Searcher`` per process, returning ``SearchPage`` objects.

The CLI and the web service both render these objects, so the HTML page and
the JSON API always agree.
"""

from __future__ import annotations

import math
import os
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .analysis import init_jieba, normalize, query_terms
from .backends import IndexTarget, open_store
from .corpus import Article
from .errors import QueryError
from .highlight import Span, find_spans, highlight_all, render, render_paragraphs, snippet
from .plan import MODES, Synonyms, add_filters, drop_stop_chunks, expand_synonyms, highlight_forms, load_tables
from .query import has_positive_text, is_free_text, parse_query, positive_texts, relax
from .rank import Proximity, proximity, rerank_by_proximity
from .store import FACETS, SORTS, IndexInfo, IndexStore, RawHit, RawPage, SearchRequest

# The largest page any caller may ask for: a hard cap of the library (the web
# service's MAX_PAGE_SIZE setting may be lower, never higher).
PAGE_SIZE_CAP = 100
# How many of the best hits are reordered by word proximity.
RERANK_DEPTH = 50
# Near-duplicates (a reprint, the same page saved twice) share the folded title and the first
# DUPLICATE_PREFIX folded characters of the body, spaces left out; the list shows the best of them once.
DUPLICATE_PREFIX = 200
# How many hits past the page are read to find the duplicates of the page's hits (they rank close
# to each other); when duplicates leave the page short, the window doubles up to DUPLICATE_WINDOW_CAP
# hits past it. Each hit read costs ~0.2 ms (its stored fields), so the lookahead is small.
DUPLICATE_LOOKAHEAD = 10
DUPLICATE_WINDOW_CAP = 1000
# How much each page's share of distinct hits moves the searcher's running estimate of it (an
# exponential average), the least share assumed, and how many more copies than that share predicts
# the first window allows for: see Searcher._grouped.
DISTINCT_SHARE_WEIGHT = 0.5
DISTINCT_SHARE_FLOOR = 0.1
COPIES_MARGIN = 1.5
# How often a searcher re-reads the folders the index was built from (for file addresses).
ROOTS_RECHECK_S = 5.0


def request_deadline(time_limit: float | None = None, deadline: float | None = None) -> float | None:
    """The one deadline of a request (a ``time.monotonic()`` value): ``time_limit`` seconds from now, or
    ``deadline``, whichever comes first; None when neither is given (no limit)."""
    if time_limit is not None and time_limit > 0:
        from_now = time.monotonic() + time_limit
        return from_now if deadline is None else min(deadline, from_now)
    return deadline


def _passed(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def format_date(value: datetime | None) -> str | None:
    """ISO 8601 as written: with its UTC offset if it had one, else the date alone when there is no time of day."""
    if value is None:
        return None
    # An offset is part of what was written (2025-06-30T00:00:00+08:00), so only a naive midnight is shortened.
    if value.tzinfo is None and value.hour == value.minute == value.second == value.microsecond == 0:
        return value.date().isoformat()
    return value.isoformat()


def duplicate_key(doc: Article) -> str:
    """What near-duplicates share: the folded title and the first ``DUPLICATE_PREFIX`` folded body characters."""
    return normalize("".join(doc.title.split())) + "\x1f" + normalize(_compact_prefix(doc.body, DUPLICATE_PREFIX))


def _compact_prefix(text: str, n: int) -> str:
    """The first ``n`` characters of ``text`` with its whitespace left out (reading only as far as needed)."""
    read = 2 * n
    while True:
        compact = "".join(text[:read].split())
        if len(compact) >= n or read >= len(text):
            return compact[:n]
        read *= 2


def display_address(doc: Article, roots: Iterable[str] = ()) -> str:
    """Where a result lives, for people: host and path of a web address, else its file under the folder indexed.

    A file is shown from the folder (or file) the index was built from, so the
    server's own directories never appear; ``:line`` stays for records in a
    file of many (JSON Lines, CSV).
    """
    if doc.url.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(doc.url)
        path = urllib.parse.unquote(parts.path, errors="replace").rstrip("/")
        return (parts.hostname or "") + path
    # Any other url (mailto:, a relative path, javascript:) is not an address to show: the file is.
    origin = doc.origin
    best = ""
    for root in roots:
        stripped = root.rstrip("/")
        if (origin == stripped or origin.startswith((stripped + "/", stripped + ":"))) and len(stripped) > len(best):
            best = stripped
    if not best:
        return os.path.basename(origin)
    parent = os.path.dirname(best)
    return origin[len(parent) :].lstrip("/") if parent else origin.lstrip("/")


@dataclass(frozen=True)
class Similar:
    """An article folded into a result as its near-duplicate."""

    id: str
    title: str
    url: str
    date: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one near-duplicate."""
        return {"id": self.id, "title": self.title, "url": self.url, "date": self.date, "source": self.source}


@dataclass(frozen=True)
class Hit:
    """One search result, with its highlighted title and snippet (safe HTML)."""

    id: str
    title: str
    url: str
    date: str | None
    source: str
    tags: list[str]
    score: float
    title_html: str
    snippet_html: str
    # The typed words and phrases this article lacks: empty for a full match.
    missing: list[str] = field(default_factory=list)
    # Where it lives, for people (see ``display_address``).
    address: str = ""
    # Its near-duplicates among the matches, best first (see ``duplicate_key``).
    similar: list[Similar] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one result."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "address": self.address,
            "date": self.date,
            "source": self.source,
            "tags": list(self.tags),
            "score": round(self.score, 4),
            "title_html": self.title_html,
            "snippet_html": self.snippet_html,
            "missing": list(self.missing),
            "similar": [item.to_dict() for item in self.similar],
        }


@dataclass(frozen=True)
class SearchPage:
    """One page of results for a query."""

    query: str
    total: int
    page: int
    size: int
    took_ms: float
    hits: list[Hit] = field(default_factory=list)
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    partial: bool = False
    # The words the query was understood as, after segmentation (for "no results" help).
    terms: list[str] = field(default_factory=list)
    # True when no document had all the words and these results match only some.
    relaxed: bool = False
    # How many matches have every word (most words, for a question); the rest of ``total`` fill the page.
    total_full: int = 0
    # How many entries the list has once near-duplicates are folded, when every match was read; else None.
    listed: int | None = None

    @property
    def pages(self) -> int:
        """How many pages the results fill (near-duplicates folded, when that is known)."""
        entries = self.total if self.listed is None else self.listed
        return max(1, -(-entries // self.size))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``/api/search``."""
        return {
            "query": self.query,
            "total": self.total,
            "total_full": self.total_full,
            "page": self.page,
            "size": self.size,
            "took_ms": round(self.took_ms, 2),
            "partial": self.partial,
            "relaxed": self.relaxed,
            "terms": list(self.terms),
            "facets": {name: [{"value": v, "count": n} for v, n in values] for name, values in self.facets.items()},
            "results": [hit.to_dict() for hit in self.hits],
        }


def _fold_duplicates(hits: list[RawHit]) -> tuple[list[RawHit], dict[str, list[RawHit]]]:
    """The hits with each near-duplicate left out, and for each hit kept, the ones folded into it."""
    heads: list[RawHit] = []
    first: dict[str, str] = {}
    folded: dict[str, list[RawHit]] = {}
    for hit in hits:
        key = duplicate_key(hit.doc)
        head = first.setdefault(key, hit.doc.id)
        if head == hit.doc.id:
            heads.append(hit)
        else:
            folded.setdefault(head, []).append(hit)
    return heads, folded


def _total_full(raw: RawPage | None, relaxed: bool) -> int:
    if raw is None or relaxed:
        return 0  # a relaxed retry's results lack some word by definition
    return raw.total if raw.total_full is None else raw.total_full


def document_dict(doc: Article) -> dict[str, Any]:
    """The JSON shape of a stored document (``/api/documents/<id>``)."""
    return {
        "id": doc.id,
        "title": doc.title,
        "body": doc.body,
        "date": format_date(doc.date),
        "source": doc.source,
        "tags": list(doc.tags),
        "url": doc.url,
    }


@dataclass(frozen=True)
class DocumentView:
    """A stored document with a query's matches: safe HTML, and offsets in code points of the stored text."""

    doc: Article
    # The title escaped, matches in <mark>; the body as <p> paragraphs, escaped, matches in <mark>.
    title_html: str
    body_html: str
    # Sorted, non-overlapping [start, end) spans, in characters (code points) of doc.title and doc.body.
    title_matches: list[Span] = field(default_factory=list)
    matches: list[Span] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``/api/documents/<id>``: the stored fields, then the highlights."""
        return {
            **document_dict(self.doc),
            "title_html": self.title_html,
            "body_html": self.body_html,
            "title_matches": [[s, e] for s, e in self.title_matches],
            "matches": [[s, e] for s, e in self.matches],
        }


class Searcher:
    """Searches one index; open it once per process and reuse it (it follows rebuilds)."""

    def __init__(
        self,
        index: IndexTarget,
        store: IndexStore | None = None,
        synonyms: str | Path | None = None,
    ) -> None:
        # Load jieba's dictionary and the folding tables now, not inside the first query's time limit.
        init_jieba()
        load_tables()
        self.store = store if store is not None else open_store(index)
        self.synonyms = Synonyms(synonyms)
        self._roots_lock = threading.Lock()
        self._roots_cache: list[str] = []
        self._roots_checked = -float("inf")
        # The share of the hits read that were not near-duplicates of a better one, over recent pages.
        self._distinct_share = 1.0

    def search(
        self,
        q: str,
        page: int = 1,
        size: int = 10,
        *,
        sources: Iterable[str] = (),
        tags: Iterable[str] = (),
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        sort: str = "relevance",
        facets: bool = False,
        time_limit: float | None = None,
        deadline: float | None = None,
        mode: str = "auto",
    ) -> SearchPage:
        """Run query ``q`` (see ``indexer.query`` for the syntax) and return one page of highlighted hits.

        ``sources``, ``tags`` and the date range narrow the results like the
        ``source:``, ``tag:`` and ``date:`` syntax. ``sort`` is "relevance" or
        "date" (newest first; undated documents last). With ``facets``,
        counts of sources and tags over all matches come back too; a facet
        with values chosen is counted as if none were, so that more can be
        added (several sources are alternatives).

        The search stops at ``deadline`` (a ``time.monotonic()`` value) or
        ``time_limit`` seconds from now, whichever comes first, and returns
        what it found flagged ``partial``: the relaxed retry and highlighting
        keep to the same deadline. A caller that runs several searches for
        one request (the web page's "did you mean") passes them all the same
        ``deadline`` (see ``request_deadline``).

        ``mode`` "auto" lists the articles with every word first (for a
        question, most of its informative words) and, when they are fewer
        than ``FILL_BELOW`` (10), continues with those that have the most words;
        ``total_full`` counts the first kind. "all" lists only those.
        """
        if page < 1:
            raise QueryError("page must be 1 or more")
        if not 1 <= size <= PAGE_SIZE_CAP:
            raise QueryError(f"size must be between 1 and {PAGE_SIZE_CAP}")
        if sort not in SORTS:
            raise QueryError(f"sort must be one of: {', '.join(SORTS)}")
        if mode not in MODES:
            raise QueryError(f"mode must be one of: {', '.join(MODES)}")
        q = " ".join(q.split())
        source_list, tag_list = list(sources), list(tags)
        has_filters = bool(source_list or tag_list or date_from or date_to)
        if not q and not has_filters:
            raise QueryError("the query is empty")
        started = time.perf_counter()
        deadline = request_deadline(time_limit, deadline)
        typed = drop_stop_chunks(parse_query(q))
        tree = add_filters(typed, source_list, tag_list, date_from, date_to)
        if not has_positive_text(tree) and sort == "relevance":
            # Nothing to rank by (only filters): newest first is the useful order.
            sort = "date"
        expanded = expand_synonyms(tree, self.synonyms)
        request = SearchRequest(
            query=expanded,
            page=page,
            size=size,
            sort=sort,
            facets=FACETS if facets else (),
            deadline=deadline,
            mode=mode,
        )
        # Ranking has two steps when the query has words that may sit side by
        # side: the store's best RERANK_DEPTH hits are reordered by word
        # proximity (see rank.rerank_by_proximity). Boosts only raise scores,
        # so the reordered block still ranks above every hit after it.
        (raw, folded, listed), relaxed, searched = self._grouped(request, proximity(expanded)), False, expanded
        if raw is not None and raw.total == 0 and not raw.partial and mode == "auto" and is_free_text(tree):
            # Nothing has every word: rank what has some of them rather than show nothing.
            # Same request, same deadline: the retry gets only the time that is left.
            loose = expand_synonyms(relax(tree), self.synonyms)
            raw, folded, listed = self._grouped(replace(request, query=loose), proximity(loose))
            relaxed = raw is not None and raw.total > 0
            searched = loose if relaxed else expanded
        facet_counts = raw.facets if raw else {}
        if facets and raw is not None and not relaxed:
            chosen = {"source": source_list, "tags": tag_list}
            for name in FACETS:
                if chosen[name] and not _passed(deadline):
                    # A facet with a choice is counted without it, so the other values can be added (OR).
                    kept_sources = () if name == "source" else source_list
                    kept_tags = () if name == "tags" else tag_list
                    without = add_filters(typed, kept_sources, kept_tags, date_from, date_to)
                    counted = self.store.search(
                        replace(request, query=expand_synonyms(without, self.synonyms), page=1, size=1, facets=(name,))
                    )
                    facet_counts = {**facet_counts, name: counted.facets.get(name, [])}
        terms = highlight_forms(searched, mode)
        hits: list[Hit] = []
        cut_short = False
        roots = self._roots() if raw and raw.hits else []
        for h in raw.hits if raw else []:
            # Out of time, the remaining hits keep an escaped title and the start of the text, unmarked.
            cut_short = cut_short or _passed(deadline)
            marked = () if cut_short else terms
            hits.append(
                Hit(
                    id=h.doc.id,
                    title=h.doc.title,
                    url=h.doc.url,
                    date=format_date(h.doc.date),
                    source=h.doc.source,
                    tags=list(h.doc.tags),
                    score=h.score,
                    title_html=highlight_all(h.doc.title, marked, deadline=deadline),
                    snippet_html=snippet(h.doc.body, marked, deadline=deadline),
                    missing=list(h.missing),
                    address=display_address(h.doc, roots),
                    similar=[
                        Similar(d.doc.id, d.doc.title, d.doc.url, format_date(d.doc.date), d.doc.source)
                        for d in folded.get(h.doc.id, ())
                    ],
                )
            )
        cut_short = cut_short or (bool(hits) and _passed(deadline))
        took_ms = (time.perf_counter() - started) * 1000
        understood = [t for item in positive_texts(tree) for t in query_terms(item.text)]
        return SearchPage(
            query=q,
            total=raw.total if raw else 0,
            page=page,
            size=size,
            took_ms=took_ms,
            hits=hits,
            facets=facet_counts,
            partial=(raw.partial if raw else False) or cut_short,
            terms=understood,
            relaxed=relaxed,
            total_full=_total_full(raw, relaxed),
            listed=listed,
        )

    def _grouped(
        self, request: SearchRequest, near: Proximity
    ) -> tuple[RawPage | None, dict[str, list[RawHit]], int | None]:
        """One page of hits, near-duplicates folded: the page, each hit's duplicates, and the entries when known.

        The ranking is read from the top, far enough past the page to find its
        hits' duplicates, so page n lists the nth ``size`` distinct articles
        whatever pages were read before: no article shows on two pages.
        """
        want = request.page * request.size
        # In a collection of many copies (reprints, one article saved several times), the first window
        # of each search is widened by the share of distinct hits seen lately: a search of the index
        # again costs far more than reading some more hits (at 1,000,000 paragraphs, 59% of them copies,
        # almost every search needed a second one). The page is the same either way: it is read from the
        # top of the same ranking.
        share = max(self._distinct_share, DISTINCT_SHARE_FLOOR)
        copies = math.ceil((want / share - want) * COPIES_MARGIN)
        window = want + min(DUPLICATE_WINDOW_CAP, copies + DUPLICATE_LOOKAHEAD)
        if near and request.sort == "relevance":
            # The store is asked for the best RERANK_DEPTH to reorder them anyway (see _ranked).
            window = max(window, RERANK_DEPTH)
        while True:
            raw = self._ranked(replace(request, page=1, size=window), near)
            if raw is None:
                return None, {}, None
            heads, folded = _fold_duplicates(raw.hits)
            if raw.hits:
                self._distinct_share += DISTINCT_SHARE_WEIGHT * (len(heads) / len(raw.hits) - self._distinct_share)
            # Fewer hits than asked for: the store has no more (or ranks no more) to give.
            exhausted = len(raw.hits) < window
            grown = min(2 * window, want + DUPLICATE_WINDOW_CAP)
            if len(heads) >= want or exhausted or raw.partial or grown == window or _passed(request.deadline):
                break
            window = grown
        shown = heads[(request.page - 1) * request.size : want]
        listed = len(heads) if exhausted and not raw.partial else None
        return replace(raw, hits=shown), {h.doc.id: folded[h.doc.id] for h in shown if h.doc.id in folded}, listed

    def _roots(self) -> list[str]:
        """The folders and files the index was built from, re-read at most every ``ROOTS_RECHECK_S`` seconds."""
        with self._roots_lock:
            now = time.monotonic()
            if now - self._roots_checked >= ROOTS_RECHECK_S:
                self._roots_cache = list(self.store.info().sources)
                self._roots_checked = now
            return self._roots_cache

    def _ranked(self, request: SearchRequest, near: Proximity) -> RawPage | None:
        """One page of raw hits, reranked when ``near`` has word pairs or runs to look for."""
        if request.query is None:
            return None
        page, size = request.page, request.size
        if not near or request.sort != "relevance" or (page - 1) * size >= RERANK_DEPTH:
            return self.store.search(request)
        end = page * size
        raw = self.store.search(replace(request, page=1, size=max(end, RERANK_DEPTH)))
        if _passed(request.deadline):
            # No time left to reorder: the store's order, flagged partial.
            return replace(raw, hits=raw.hits[(page - 1) * size : end], partial=True)
        ranked = rerank_by_proximity(raw.hits[:RERANK_DEPTH], near) + raw.hits[RERANK_DEPTH:]
        return replace(raw, hits=ranked[(page - 1) * size : end])

    def get(self, doc_id: str) -> Article | None:
        """The stored document with this id, or None."""
        return self.store.get(doc_id)

    def highlight_terms(self, q: str, mode: str = "auto") -> tuple[tuple[str, ...], ...]:
        """What ``search`` marks for query ``q``: each counted unit's forms, synonyms included."""
        # The same steps as search(), without filters: they never add anything to mark.
        return highlight_forms(expand_synonyms(drop_stop_chunks(parse_query(" ".join(q.split()))), self.synonyms), mode)

    def document(
        self, doc_id: str, q: str | None = None, *, mode: str = "auto", deadline: float | None = None
    ) -> DocumentView | None:
        """The stored document with this id and the matches of query ``q`` marked in it, or None.

        The marks are those of the result list (``highlight_terms``), found in
        the whole stored title and body as written, Markdown included. Without
        ``q`` (or once ``deadline`` has passed) nothing is marked.
        """
        doc = self.store.get(doc_id)
        if doc is None:
            return None
        terms = self.highlight_terms(q, mode) if q and q.strip() else ()
        title_spans = find_spans(doc.title, terms, deadline)
        body_spans = find_spans(doc.body, terms, deadline)
        return DocumentView(
            doc=doc,
            title_html=render(doc.title, title_spans),
            body_html=render_paragraphs(doc.body, body_spans),
            title_matches=title_spans,
            matches=body_spans,
        )

    def info(self) -> IndexInfo:
        """Document count, size, format version and build time of the index."""
        return self.store.info()

    def close(self) -> None:
        """Release the index files."""
        self.store.close()
