"""How an article becomes a Typesense document, and back.

**Documents.** Text is analysed by zhsearch's own analyzer
(``indexer.analysis``), never by Typesense, so folding, identifiers and the
user dictionary behave as on Whoosh. Each of title and body becomes:

- ``<field>_seq`` (indexed ``string``): one token per position, that is the
  jieba words and, for identifiers, their finest pieces (``ernie 4 5 vl``),
  so Typesense phrases see adjacent words; then the index-time extras
  (sub-words such as 大模型 inside 文心大模型, whole identifiers and their
  parts) appended once each, so every analysed term is searchable by ``q``.
- ``<field>_terms`` (``string[]``): the distinct index-time terms, used by
  ``filter_by`` for exact boolean matching, and the *joined pieces*: every
  run of 2 to ``JOINED_UP_TO`` letter or digit pieces that stand side by side
  in the text, joined by ``_`` (``ubuntu 22.04`` gives ``ubuntu_22``,
  ``22_04`` and ``ubuntu_22_04``). Whoosh finds an identifier also as the
  phrase of its pieces (``22.04`` finds ``22-04`` and ``22 04``, never a 22
  and an 04 apart); a filter on the joined pieces finds the same documents
  (a longer identifier needs every overlapping run of ``JOINED_UP_TO``).

Typesense keeps ``. - _ + #`` inside tokens (``symbols_to_index``) so that
``c++``, ``c#``, ``4.5`` and ``45`` stay distinct. The original title, body,
url, origin, content hash and ISO date are stored unindexed and come back in
hits; snippets and highlights are made by zhsearch from them, as on Whoosh.
``source`` and ``tags`` are facet fields; ``date`` is an int64 (epoch
seconds of the instant, ``MISSING_DATE`` when there is none) for sorting,
and ``date_local`` the same of the date and time as written (its offset
ignored) for date filters, which match the day as written, as on Whoosh.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from ...analysis import identifier_pieces, iter_terms
from ...corpus import Article
from ...schema import SCHEMA_VERSION

# Bump when the documents or the collection schema below change: a cluster
# built by another layout must be rebuilt, like a Whoosh index of another format.
# 2: date_local (date filters by the day as written; ``date`` is the instant).
# 3: date_oldest. 4: the joined pieces in ``<field>_terms``.
LAYOUT_VERSION = 4
FORMAT_VERSION = f"{SCHEMA_VERSION}+ts{LAYOUT_VERSION}"

MISSING_DATE = -(2**62)
# The int64 field date filters compare with: the date and time as written, as if in UTC.
DATE_FILTER_FIELD = "date_local"
EPOCH = datetime(1970, 1, 1)

TEXT_FIELDS = ("title", "body")
STORED_FIELDS = ("id", "title", "body", "url", "source", "tags", "date_iso", "origin", "content_hash")
# What a search hit needs: the stored fields but those only sync reads (``manifest`` exports them).
HIT_FIELDS = tuple(f for f in STORED_FIELDS if f not in ("origin", "content_hash"))


# Runs of up to this many pieces side by side are indexed joined: identifiers of up to 3 pieces (22.04,
# x86_64, gpt-4o) match exactly; 3 adds about 40% to the distinct terms of the first 800 shared articles (2: 21%).
JOINED_UP_TO = 3
JOINER = "_"
# A piece of an identifier, as ``identifier_pieces`` gives them: letters only or digits only.
_PIECE_RE = re.compile(r"[a-z]+|[0-9]+")


def joined(pieces: list[str]) -> str:
    """The term that stands for ``pieces`` side by side (``22``, ``04`` → ``22_04``)."""
    return JOINER.join(pieces)


def joined_runs(tokens: list[str]) -> list[str]:
    """Every run of 2 to ``JOINED_UP_TO`` pieces that follow each other in ``tokens``, joined."""
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if _PIECE_RE.fullmatch(token):
            run.append(token)
            continue
        for n in range(2, JOINED_UP_TO + 1):
            out.extend(joined(run[i : i + n]) for i in range(len(run) - n + 1))
        run = []
    return out


def epoch(value: datetime) -> int:
    """Seconds since 1970 in UTC (a naive time is taken as UTC), as Typesense's int64 date field holds them."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return math.floor((value - EPOCH).total_seconds())


def analyse_field(text: str) -> tuple[str, list[str]]:
    """``(seq, terms)`` for one text field: positions then extras as one string, and the distinct terms."""
    by_position: dict[int, list[str]] = {}
    for term, pos, _, _ in iter_terms(text, "index"):
        by_position.setdefault(pos, []).append(term)
    main: list[str] = []
    skip_until = -1
    for pos in sorted(by_position):
        if pos < skip_until:
            continue
        first = by_position[pos][0]
        # An identifier's first term is the whole of it; its pieces fill the next positions.
        pieces = identifier_pieces(first)
        if pieces:
            main.extend(pieces)
            skip_until = pos + len(pieces)
        else:
            main.append(first)
    distinct = list(dict.fromkeys(t for terms in by_position.values() for t in terms))
    seen = set(main)
    extras = [t for t in distinct if t not in seen]
    terms = list(dict.fromkeys([*distinct, *main, *joined_runs(main)]))
    return " ".join(main + extras), terms


def to_document(article: Article) -> dict[str, Any]:
    """The Typesense document for an article: analysed fields for search, the original for display."""
    doc: dict[str, Any] = {
        "id": article.id,
        "source": article.source,
        "tags": list(article.tags),
        "date": epoch(article.date) if article.date is not None else MISSING_DATE,
        # Ascending on this field (sort=oldest) puts undated articles last, as descending on "date" does.
        "date_oldest": epoch(article.date) if article.date is not None else -MISSING_DATE,
        DATE_FILTER_FIELD: epoch(article.date.replace(tzinfo=None)) if article.date is not None else MISSING_DATE,
        "title": article.title,
        "body": article.body,
        "url": article.url,
        "origin": article.origin,
        "content_hash": article.content_hash(),
        "date_iso": article.date.isoformat() if article.date is not None else None,
    }
    for name, text in (("title", article.title), ("body", article.body)):
        seq, terms = analyse_field(text)
        doc[f"{name}_seq"] = seq
        doc[f"{name}_terms"] = terms
    return doc


def from_document(doc: dict[str, Any]) -> Article:
    """The article stored in a Typesense document."""
    iso = doc.get("date_iso")
    return Article(
        id=str(doc["id"]),
        title=doc.get("title", ""),
        body=doc.get("body", ""),
        date=datetime.fromisoformat(iso) if iso else None,
        source=doc.get("source", ""),
        tags=tuple(doc.get("tags") or ()),
        url=doc.get("url", ""),
        origin=doc.get("origin", ""),
    )


def collection_schema(name: str) -> dict[str, Any]:
    """The collection definition; fields not listed are stored but not indexed."""
    fields: list[dict[str, Any]] = []
    for text_field in TEXT_FIELDS:
        fields.append({"name": f"{text_field}_seq", "type": "string"})
        fields.append({"name": f"{text_field}_terms", "type": "string[]"})
    fields += [
        {"name": "source", "type": "string", "facet": True},
        {"name": "tags", "type": "string[]", "facet": True},
        {"name": "date", "type": "int64", "sort": True},
        {"name": "date_oldest", "type": "int64", "sort": True},
        {"name": DATE_FILTER_FIELD, "type": "int64"},
    ]
    return {
        "name": name,
        "fields": fields,
        # Tokens are whitespace-separated already; keep the symbols identifiers carry.
        "symbols_to_index": [".", "-", "_", "+", "#"],
        "token_separators": [],
    }
