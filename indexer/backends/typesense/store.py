"""A Typesense cluster backend: replicas for read capacity and availability, behind the storage seam.

Select it with ``ZHSEARCH_BACKEND=typesense`` and point it at the cluster
with ``ZHSEARCH_TYPESENSE_NODES`` (comma-separated URLs of every node),
``ZHSEARCH_TYPESENSE_API_KEY`` and ``ZHSEARCH_TYPESENSE_COLLECTION``
(default ``zhsearch``). Typesense replicates every document to every node
(Raft; no sharding), so a cluster adds read throughput and survives a node,
not data size.

**State lives in the cluster.** ``TypesenseSettings`` name the nodes, the
API key and the collection, and nothing is kept on local disk: the live
collection is found through a Typesense alias, and its
build metadata (format version, build and update times, sources, user
dictionary) is a document in the ``<collection>__meta`` collection. Any
number of web servers can share the cluster without sharing a disk, and
``zhsearch info`` on any machine reports the same thing.

The package's modules: ``client`` (HTTP, retries, node health),
``documents`` (articles as Typesense documents), ``query`` (the query tree
as a filter and a ranking), ``scoring`` (BM25 on the best candidates' text)
and this one, the ``IndexStore``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ...analysis import init_jieba, subwords
from ...corpus import Article
from ...errors import IndexerError, IndexMissingError, SchemaMismatchError
from ...index_meta import MAX_FACET_VALUES, REBUILD_HINT, format_refusal, index_info, new_build_record, now, touched
from ...store import IndexInfo, RawHit, RawPage, SearchRequest
from .client import (
    API_KEY_ENV,
    COLLECTION_ENV,
    DOWN,
    IMPORT_TIMEOUT_S,
    LAGGING,
    NO_LEADER,
    NODES_ENV,
    RETRY_INTERVAL_S,
    ClusterUnavailableError,
    TypesenseClient,
    check,
    problem,
)
from .documents import FORMAT_VERSION, HIT_FIELDS, STORED_FIELDS, collection_schema, from_document, to_document
from .query import FILTER_FIELD, Expr, compile_filter, q_form, rank_query, rank_units, render_filter
from .scoring import OTHER_FORM_WEIGHT, SUBWORD_WEIGHT, TITLE_WEIGHT, ScoredUnit, text_scores
from .scoring import idf as idf_of

# Typesense sort orders by the API's sort; undated articles last in both date orders.
_SORT_BY = {
    "relevance": "_text_match:desc,date:desc",
    "date": "date:desc,_text_match:desc",
    "oldest": "date_oldest:asc,_text_match:desc",
}

DEFAULT_NODES = "http://127.0.0.1:8108"
DEFAULT_COLLECTION = "zhsearch"

IMPORT_BATCH = 200
# When not every word must match: how many units (and written forms of them) are ranked.
MAX_RANK_UNITS = 16
MAX_RANK_FORMS = 24
# Each form's candidate list. Typesense 0.24 reads every returned hit's whole stored document, so a list
# costs by its length: a form in at most FULL_LIST_UP_TO documents (one page) lists every one of them, a
# commoner one only its best COMMON_LIST, which add little to the score (low IDF) and used to take most of
# a question's time (250 for every word: about 240 ms on the server and 650-770 KB per question).
FULL_LIST_UP_TO = 250
# Typesense returns at most this many hits to one search; a longer list is read page by page.
MAX_PER_PAGE = 250
COMMON_LIST = 50
# How many of the best candidates are reordered by BM25 on their stored text (the page's first 50,
# which the proximity rerank of ``indexer.search`` reads too).
RERANK_WINDOW = 50
QUERY_BY = "title_seq,body_seq"
QUERY_WEIGHTS = "2,1"
READY_CACHE_S = 2.0
# Reads go to any node, and a follower applies a write a few milliseconds after
# the leader acknowledged it: "not found" is believed only after this long.
REPLICATION_WAIT_S = 2.0
# A search answered with "not found" or "not ready" by one node is asked again (the client rotates nodes).
SEARCH_RETRIES = 20


# What ``info`` warns about a node in each state that is not leader or follower.
_NODE_PROBLEMS = {
    DOWN: "is down",
    LAGGING: "is lagging: it is catching up with the leader and gets no reads until it has",
    NO_LEADER: "has no leader",
}


# -- settings -----------------------------------------------------------------


@dataclass(frozen=True)
class TypesenseSettings:
    """Where the cluster is and which collection (alias) holds the index."""

    nodes: tuple[str, ...]
    api_key: str
    collection: str = DEFAULT_COLLECTION
    backend: str = field(default="typesense", init=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], index_dir: object = None) -> TypesenseSettings:
        """Read ``ZHSEARCH_TYPESENSE_NODES``, ``..._API_KEY`` and ``..._COLLECTION`` (a cluster has no index dir)."""
        raw = environ.get(NODES_ENV, DEFAULT_NODES)
        nodes = tuple(n.strip().rstrip("/") for n in raw.split(",") if n.strip())
        for node in nodes:
            parsed = urllib.parse.urlsplit(node)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise IndexerError(f"{NODES_ENV}: {node!r} is not a URL such as http://127.0.0.1:8108")
        if not nodes:
            raise IndexerError(f"{NODES_ENV} names no Typesense node")
        api_key = environ.get(API_KEY_ENV, "")
        if not api_key:
            raise IndexerError(f"set {API_KEY_ENV} to the Typesense cluster's API key")
        collection = environ.get(COLLECTION_ENV, DEFAULT_COLLECTION).strip() or DEFAULT_COLLECTION
        if not collection.replace("_", "").replace("-", "").isalnum():
            raise IndexerError(f"{COLLECTION_ENV}: {collection!r} must be letters, digits, - and _")
        return cls(nodes, api_key, collection)


# -- the store -------------------------------------------------------------------


class TypesenseStore:
    """``IndexStore`` on a Typesense cluster (see the module docstring)."""

    backend = "typesense"

    def __init__(self, settings: TypesenseSettings, client: TypesenseClient | None = None) -> None:
        self.settings = settings
        self.client = client or TypesenseClient(self.settings.nodes, self.settings.api_key)
        self.alias = self.settings.collection
        self.meta_collection = f"{self.alias}__meta"
        self._ready_at = 0.0
        self._ready_target: str | None = None
        self._lock = threading.Lock()

    # -- cluster layout ---------------------------------------------------

    def _get_settled(self, path: str, wait: bool) -> tuple[int, Any]:
        """GET, and on 404 ask again for a moment: a follower may not have applied the latest write yet."""
        deadline = time.monotonic() + (REPLICATION_WAIT_S if wait else 0.0)
        while True:
            status, data = self.client.json("GET", path)
            if status != 404 or time.monotonic() >= deadline:
                return status, data
            time.sleep(0.1)

    def _target(self, wait: bool = True) -> str | None:
        """The collection the alias points to, or None when there is no index."""
        status, data = self._get_settled(f"/aliases/{self.alias}", wait)
        if status == 404:
            return None
        return str(check(status, data, f"read the alias {self.alias}")["collection_name"])

    def _read_meta(self, collection: str) -> dict[str, Any]:
        status, data = self._get_settled(f"/collections/{self.meta_collection}/documents/{collection}", True)
        if status == 404:
            raise SchemaMismatchError(f"the Typesense collection {collection} has no zhsearch metadata; {REBUILD_HINT}")
        meta: dict[str, Any] = check(status, data, "read the index metadata")
        found = meta.get("format_version")
        if found != FORMAT_VERSION:
            raise SchemaMismatchError(format_refusal(f"the Typesense index {self.alias}", found, FORMAT_VERSION))
        return meta

    def _require(self, fresh: bool = False) -> str:
        """The live collection, checked for format; cached briefly so searches need no extra request."""
        now = time.monotonic()
        with self._lock:
            if not fresh and self._ready_target is not None and now - self._ready_at < READY_CACHE_S:
                return self._ready_target
        target = self._target()
        if target is None:
            raise IndexMissingError(
                f"no zhsearch index in the Typesense cluster (alias {self.alias!r}); "
                "build one with `zhsearch build PATH...`"
            )
        self._read_meta(target)
        with self._lock:
            self._ready_target, self._ready_at = target, now
        return target

    def _forget(self) -> None:
        with self._lock:
            self._ready_target = None

    def _ensure_meta_collection(self) -> None:
        status, data = self.client.json("GET", f"/collections/{self.meta_collection}")
        if status == 404:
            schema = {"name": self.meta_collection, "fields": [{"name": "format_version", "type": "string"}]}
            status, data = self.client.json("POST", "/collections", payload=schema)
            # 409: another process (or a retried request) created it first.
            if status != 409:
                check(status, data, "create the metadata collection")
        else:
            check(status, data, "read the metadata collection")

    def _write_meta(self, collection: str, meta: dict[str, Any]) -> None:
        doc = {"id": collection, **meta}
        status, data = self.client.json(
            "POST", f"/collections/{self.meta_collection}/documents", params={"action": "upsert"}, payload=doc
        )
        check(status, data, "write the index metadata")

    def _touch_meta(self, collection: str) -> None:
        self._write_meta(collection, touched(self._read_meta(collection)))

    def _new_collection(self, sources: list[str]) -> str:
        name = f"{self.alias}__{now().strftime('%Y%m%dT%H%M%S%f')}_{os.getpid()}"
        self._ensure_meta_collection()
        status, data = self.client.json("POST", "/collections", payload=collection_schema(name))
        if status != 409:
            check(status, data, f"create the collection {name}")
        self._write_meta(name, new_build_record(self.backend, sources, format_version=FORMAT_VERSION))
        return name

    def _drop_collection(self, name: str) -> None:
        self.client.json("DELETE", f"/collections/{name}")
        self.client.json("DELETE", f"/collections/{self.meta_collection}/documents/{name}")

    def _switch_alias(self, name: str) -> None:
        status, data = self.client.json("PUT", f"/aliases/{self.alias}", payload={"collection_name": name})
        check(status, data, f"point the alias {self.alias} at {name}")

    def _import(self, collection: str, articles: Iterable[Article]) -> int:
        count = 0
        for batch in _batches(articles, IMPORT_BATCH):
            lines = "\n".join(json.dumps(to_document(a), ensure_ascii=False) for a in batch).encode("utf-8")
            status, data = self.client.request(
                "POST",
                f"/collections/{collection}/documents/import",
                params={"action": "upsert"},
                body=lines,
                timeout=IMPORT_TIMEOUT_S,
            )
            text = data.decode("utf-8", "replace")
            if status != 200:
                raise IndexerError(f"Typesense refused an import: HTTP {status} {text[:300]}")
            for article, line in zip(batch, text.splitlines(), strict=False):
                result = json.loads(line)
                if not result.get("success"):
                    raise IndexerError(f"Typesense refused document {article.id!r}: {result.get('error')}")
            count += len(batch)
        return count

    # -- writing ----------------------------------------------------------

    def build(self, articles: Iterable[Article], sources: list[str]) -> int:
        """Fill a new collection, then switch the alias to it in one step and drop the old one."""
        init_jieba()
        old = self._target(wait=False)
        name = self._new_collection(sources)
        try:
            count = self._import(name, articles)
            self._switch_alias(name)
        except BaseException:
            self._drop_collection(name)
            raise
        self._forget()
        self._prune(keep=name, old=old)
        return count

    def _prune(self, keep: str, old: str | None) -> None:
        status, data = self.client.json("GET", "/collections")
        names = [c["name"] for c in data] if status == 200 and isinstance(data, list) else []
        prefix = f"{self.alias}__"
        for name in names:
            # Older generations only: a newer one may be a build still running.
            stale = name.startswith(prefix) and name != self.meta_collection and name < keep
            if name == old or stale:
                self._drop_collection(name)

    def add(self, articles: Iterable[Article]) -> int:
        """Upsert documents by id into the live collection (created if there is none)."""
        init_jieba()
        target = self._target()
        if target is None:
            target = self._new_collection([])
            self._switch_alias(target)
        self._read_meta(target)
        count = self._import(target, articles)
        self._touch_meta(target)
        self._forget()
        return count

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; return those that existed."""
        target = self._require(fresh=True)
        deleted = []
        for doc_id in ids:
            status, data = self.client.json("DELETE", f"/collections/{target}/documents/{_quote(doc_id)}")
            if status == 200:
                deleted.append(doc_id)
            elif status != 404:
                check(status, data, f"delete {doc_id!r}")
        self._touch_meta(target)
        self._forget()
        return deleted

    # -- reading ----------------------------------------------------------

    def _base_params(self, request: SearchRequest, expr: Expr) -> dict[str, Any]:
        params: dict[str, Any] = {
            "collection": self.alias,
            "prefix": "false",
            "num_typos": 0,
            "typo_tokens_threshold": 0,
            "drop_tokens_threshold": 0,
            "highlight_fields": "none",
        }
        if expr is not True:
            params["filter_by"] = render_filter(expr)
        left = request.time_left()
        if left is not None:
            # The time left of the request's one deadline (a relaxed retry gets only what remains).
            params["search_cutoff_ms"] = max(1, int(left * 1000))
        return params

    def _multi_search(self, searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run searches in one request; a per-search 404 or 5xx is retried, on the next node."""
        problem = ""
        for attempt in range(SEARCH_RETRIES):
            status, data = self.client.json("POST", "/multi_search", payload={"searches": searches})
            results: list[dict[str, Any]] = check(status, data, "search")["results"]
            failed = [r for r in results if "error" in r]
            if not failed:
                return results
            code = int(failed[0].get("code") or 0)
            problem = f"{failed[0]['error']} (HTTP {code})"
            # 404: the alias moved (a rebuild) or this node has not caught up; 5xx: the node is not ready.
            if code != 404 and code < 500:
                break
            self._forget()
            time.sleep(min(0.05 * (attempt + 1), RETRY_INTERVAL_S))
        raise IndexerError(f"Typesense search failed: {problem}")

    def search(self, request: SearchRequest) -> RawPage:
        """Run a parsed query; return the requested page, facet counts, and whether time ran out."""
        if request.size > MAX_PER_PAGE and request.page == 1:
            # The searcher reads a long ranking from the top (folding near-duplicates before a deep
            # page): the same ranking, MAX_PER_PAGE at a time.
            first = self._search_page(replace(request, size=MAX_PER_PAGE))
            hits, partial = list(first.hits), first.partial
            for page in range(2, -(-request.size // MAX_PER_PAGE) + 1):
                if len(hits) < (page - 1) * MAX_PER_PAGE or partial:
                    break
                more = self._search_page(replace(request, page=page, size=MAX_PER_PAGE, facets=()))
                hits += more.hits
                partial = partial or more.partial
            return replace(first, hits=hits[: request.size], partial=partial)
        return self._search_page(request)

    def _search_page(self, request: SearchRequest) -> RawPage:
        """One page of at most MAX_PER_PAGE hits."""
        init_jieba()
        self._require()
        # No query at all lists every document; a query that constrains nothing matches nothing.
        expr = True if request.query is None else compile_filter(request.query)
        if expr is None or expr is False:
            return RawPage(total=0, hits=[])
        ranking = rank_query(request.query)
        params = self._base_params(request, expr)
        facets = [f for f in request.facets if f in FILTER_FIELD]
        if facets:
            params.update(facet_by=",".join(facets), max_facet_values=MAX_FACET_VALUES)
        if (ranking.words or ranking.phrases) and not ranking.strict and request.sort == "relevance":
            return self._search_some_words(request, params)
        params.update(page=request.page, per_page=request.size, include_fields=",".join(HIT_FIELDS))
        if ranking.words or ranking.phrases:
            if ranking.strict:
                # Every word must match: Typesense ranks them, phrases included.
                parts = [f'"{" ".join(p)}"' for p in ranking.phrases] + list(ranking.words)
                params["q"] = " ".join(parts)
            else:
                # Date order needs no ranking: the filter alone decides the matches.
                params["q"] = "*"
            params.update(query_by=QUERY_BY, query_by_weights=QUERY_WEIGHTS)
            params["sort_by"] = _SORT_BY[request.sort]
        else:
            params.update(q="*", sort_by=_SORT_BY["oldest" if request.sort == "oldest" else "date"])
        start = (request.page - 1) * request.size
        rerank = ranking.strict and bool(ranking.words or ranking.phrases) and request.sort == "relevance"
        if not rerank or start >= RERANK_WINDOW:
            result = self._multi_search([params])[0]
            hits = [
                RawHit(from_document(h["document"]), float(h.get("text_match") or 0)) for h in result.get("hits", [])
            ]
            return RawPage(
                total=int(result.get("found", 0)),
                hits=hits,
                facets=_facets(result),
                partial=bool(result.get("search_cutoff")),
            )
        # Typesense ranks every full match by where its words are, not by how often they occur: its best
        # RERANK_WINDOW are reordered by BM25 on their text (see scoring), in the same request as the counts.
        end = start + request.size
        params.update(page=1, per_page=max(end, RERANK_WINDOW))
        units, _ = rank_units(request.query)
        forms = list(dict.fromkeys(q_form(f) for u in units[:MAX_RANK_UNITS] for f in u.forms))[:MAX_RANK_FORMS]
        per_form = {k: v for k, v in params.items() if k not in ("facet_by", "max_facet_values", "sort_by")}
        results = self._multi_search([params, *({**per_form, "q": f, "per_page": 0} for f in forms)])
        result = results[0]
        total = int(result.get("found", 0))
        idf = {
            f: idf_of(total, int(r.get("found", 0))) for f, r in zip(forms, results[1:], strict=True) if r.get("found")
        }
        docs = [from_document(h["document"]) for h in result.get("hits", [])]
        scored = [ScoredUnit(u.forms, idf.get(q_form(u.forms[0]))) for u in units[:MAX_RANK_UNITS]]
        # Keywords: the title counts as part of the text only, as in Whoosh's one content field.
        text = text_scores(docs[:RERANK_WINDOW], scored, total, title_weight=0.0)
        order = sorted(range(len(text)), key=lambda i: -text[i]) + list(range(len(text), len(docs)))
        return RawPage(
            total=total,
            hits=[RawHit(docs[i], text[i] if i < len(text) else 0.0) for i in order[start:end]],
            facets=_facets(result),
            partial=any(r.get("search_cutoff") for r in results),
        )

    def _search_some_words(self, request: SearchRequest, params: dict[str, Any]) -> RawPage:
        """Rank documents that need not have every word: one list per unit, merged with IDF weights.

        Typesense's own token dropping ranks by the longest run of query words
        from the left, which orders questions almost at random. Instead the
        query's units (``query.rank_units``: the words, runs, names and
        identifiers Whoosh scores) are searched one by one within the exact
        match filter: a counts-only multi_search gives the total and each
        form's document count; one multi_search lists each form's candidates
        (every document that has it, or the best ``COMMON_LIST`` of a common
        one); a document scores, per unit, the IDF of its best form, scaled by
        how well Typesense ranks it for that form (title matches rank higher);
        a last request fetches the page.
        """
        # As the filter, which ignores ``mode`` (see query's docstring), so the ranked units are those it matches.
        units, question = rank_units(request.query)
        units = units[:MAX_RANK_UNITS]
        forms = list(dict.fromkeys(q_form(f) for u in units for f in u.forms))[:MAX_RANK_FORMS]
        # The words inside a long word (学术研究 → 学术, 研究) are counted, not listed: they only add to the score.
        inner = [w for u in units for t in u.forms[0] for w in subwords(t)]
        inner = [w for w in dict.fromkeys(inner) if w not in forms][:MAX_RANK_FORMS]
        per_form = {k: v for k, v in params.items() if k not in ("facet_by", "max_facet_values")}
        per_form.update(query_by=QUERY_BY, query_by_weights=QUERY_WEIGHTS, per_page=0, sort_by="_text_match:desc")
        # Counting costs Typesense next to nothing; the hits it returns cost it by the document.
        counted = forms + inner
        counts = self._multi_search([{**params, "q": "*", "per_page": 0}, *({**per_form, "q": f} for f in counted)])
        total = int(counts[0].get("found", 0))
        found = {f: int(r.get("found", 0)) for f, r in zip(counted, counts[1:], strict=True)}
        listed = [f for f in forms if found[f]]
        searches = [{**per_form, "q": f, "include_fields": "id", "per_page": _list_length(found[f])} for f in listed]
        lists = self._multi_search(searches) if searches else []
        idf = {f: idf_of(total, n) for f, n in found.items() if n}
        form_scores: dict[str, dict[str, float]] = {}
        for form, result in zip(listed, lists, strict=True):
            hits = result.get("hits", [])
            best = float(hits[0].get("text_match") or 1) if hits else 1.0
            # Half for having the form, half for how Typesense ranks it (field weight).
            form_scores[form] = {
                str(h["document"]["id"]): idf[form] * (0.5 + 0.5 * float(h.get("text_match") or 0) / best) for h in hits
            }
        scores: dict[str, float] = {}
        scored_units: list[ScoredUnit] = []
        for unit in units:
            best_of: dict[str, float] = {}
            for i, form in enumerate(q_form(f) for f in unit.forms):
                weight = 1.0 if i == 0 else OTHER_FORM_WEIGHT
                for doc_id, value in form_scores.get(form, {}).items():
                    best_of[doc_id] = max(best_of.get(doc_id, 0.0), weight * value)
            for doc_id, value in best_of.items():
                scores[doc_id] = scores.get(doc_id, 0.0) + value
            scored_units.append(ScoredUnit(unit.forms, idf.get(q_form(unit.forms[0]))))
        scored_units += [ScoredUnit(((w,),), idf[w], SUBWORD_WEIGHT) for w in inner if w in idf]
        ranked = sorted(scores, key=lambda d: -scores[d])
        start = (request.page - 1) * request.size
        end = start + request.size
        # The best RERANK_WINDOW are reordered by BM25 on their text (see scoring); the rest follow.
        window = min(RERANK_WINDOW, len(ranked)) if start < RERANK_WINDOW else 0
        docs = self._fetch(ranked[:window] + ranked[max(start, window) : max(end, window)])
        head = [d for d in ranked[:window] if d in docs]
        text = dict(
            zip(
                head,
                text_scores([docs[d] for d in head], scored_units, total, TITLE_WEIGHT if question else 0.0),
                strict=True,
            )
        )
        head.sort(key=lambda d: -text[d])
        order = head + ranked[window:]
        hits = [RawHit(docs[d], text.get(d, scores[d])) for d in order[start:end] if d in docs]
        # Documents that only have forms too common to reach any candidate list are counted but not ranked.
        partial = any(r.get("search_cutoff") for r in [*counts, *lists])
        return RawPage(total=total, hits=hits, facets=_facets(counts[0]), partial=partial)

    def _fetch(self, ids: list[str]) -> dict[str, Article]:
        """The stored articles with these ids, in one request."""
        if not ids:
            return {}
        fetch = {
            "collection": self.alias,
            "q": "*",
            "filter_by": "id:[" + ",".join(f"`{d}`" for d in ids if "`" not in d) + "]",
            "per_page": len(ids),
            "include_fields": ",".join(HIT_FIELDS),
        }
        docs: dict[str, Article] = {}
        for hit in self._multi_search([fetch])[0].get("hits", []):
            article = from_document(hit["document"])
            docs[article.id] = article
        return docs

    def get(self, doc_id: str) -> Article | None:
        """The stored document with this id, or None."""
        self._require()
        status, data = self.client.json(
            "GET",
            f"/collections/{self.alias}/documents/{_quote(doc_id)}",
            params={"include_fields": ",".join(STORED_FIELDS)},
        )
        if status == 404:
            return None
        return from_document(check(status, data, f"read {doc_id!r}"))

    def _export(self, fields: str) -> Iterator[dict[str, Any]]:
        target = self._require(fresh=True)
        status, data = self.client.request(
            "GET",
            f"/collections/{target}/documents/export",
            params={"include_fields": fields},
            timeout=IMPORT_TIMEOUT_S,
        )
        if status != 200:
            raise IndexerError(f"Typesense refused an export: HTTP {status} {data[:300].decode('utf-8', 'replace')}")
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                yield json.loads(line)

    def manifest(self) -> dict[str, tuple[str, str]]:
        """``{id: (origin, content_hash)}`` for every document, for incremental sync."""
        return {
            str(d["id"]): (d.get("origin", ""), d.get("content_hash", ""))
            for d in self._export("id,origin,content_hash")
        }

    def title_terms(self) -> list[tuple[str, int]]:
        """Every analysed title term with the number of documents whose title has it."""
        counts: Counter[str] = Counter()
        for doc in self._export("title_terms"):
            counts.update(doc.get("title_terms") or ())
        return sorted(counts.items())

    def titles(self) -> list[str]:
        """The title of every document (for suggestions)."""
        return [str(doc.get("title") or "") for doc in self._export("title")]

    def info(self) -> IndexInfo:
        """Document count, format version and times of the live collection, each node's state, and writability."""
        state = self.client.cluster_state()
        if not state.readable:
            # Fail at once rather than after the read budget: /healthz must answer a load balancer quickly.
            raise ClusterUnavailableError(problem(state, write=False))
        target = self._require(fresh=True)
        meta = self._read_meta(target)
        status, data = self.client.json("GET", f"/collections/{target}")
        documents = int(check(status, data, "describe the collection").get("num_documents", 0))
        status, metrics = self.client.json("GET", "/metrics.json")
        size = 0
        if status == 200 and isinstance(metrics, dict):
            size = int(float(metrics.get("typesense_memory_active_bytes", 0) or 0))

        warnings = [
            f"node {node} {_NODE_PROBLEMS[named]}" for node, named in state.nodes.items() if named in _NODE_PROBLEMS
        ]
        if not state.writable:
            warnings.insert(0, problem(state, write=True))
        return index_info(
            meta,
            backend=self.backend,
            path=f"typesense:{self.alias} -> {target} on {', '.join(self.settings.nodes)}",
            documents=documents,
            size_bytes=size,
            warnings=warnings,
            writable=state.writable,
            nodes=state.nodes,
        )

    def close(self) -> None:
        """Close the connections to the cluster."""
        self.client.close()


def _list_length(df: int) -> int:
    """How many of a word's best documents to rank, given how many have it."""
    return df if df <= FULL_LIST_UP_TO else COMMON_LIST


def _quote(doc_id: str) -> str:
    return urllib.parse.quote(doc_id, safe="")


def _batches(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    batch: list[Article] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _facets(result: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    return {
        f["field_name"]: _top_counts((c["value"], c["count"]) for c in f.get("counts", []))
        for f in result.get("facet_counts", [])
    }


def _top_counts(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[str, int]]:
    items = [(str(v), int(n)) for v, n in pairs if v not in (None, "")]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    return items[:MAX_FACET_VALUES]
