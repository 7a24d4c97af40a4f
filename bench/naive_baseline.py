"""The tutorial jieba + Whoosh search, kept as the reference zhsearch is measured against.

This is the recipe most jieba+Whoosh tutorials and projects use: jieba's
``ChineseAnalyzer`` on title and body, Whoosh's default BM25F, a
``MultifieldParser`` with its default AND grouping, one writer, one commit,
and Whoosh's own highlighter on the stored body. It is not part of the
product; the evaluation and the benchmarks run it side by side with zhsearch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jieba
from jieba.analyse import ChineseAnalyzer
from whoosh import index
from whoosh.fields import ID, TEXT, Schema
from whoosh.qparser import MultifieldParser

jieba.setLogLevel(logging.WARNING)


def naive_schema() -> Schema:
    analyzer = ChineseAnalyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        title=TEXT(stored=True, analyzer=analyzer),
        body=TEXT(stored=True, analyzer=analyzer),
    )


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON Lines file (the tutorial reads files itself, with no validation)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


class NaiveIndex:
    """Build with ``NaiveIndex.build(records, dir)``; search with ``NaiveIndex(dir).search(q)``."""

    @staticmethod
    def build(records: Iterable[dict[str, Any]], index_dir: str | Path) -> int:
        """Index records with ``id``, ``title`` and ``body``; return how many."""
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        ix = index.create_in(str(index_dir), naive_schema())
        writer = ix.writer()
        count = 0
        for r in records:
            writer.add_document(id=str(r["id"]), title=r.get("title") or "", body=r.get("body") or "")
            count += 1
        writer.commit()
        ix.close()
        return count

    def __init__(self, index_dir: str | Path) -> None:
        self.ix = index.open_dir(str(index_dir))
        self.searcher = self.ix.searcher()
        self.parser = MultifieldParser(["title", "body"], self.ix.schema)

    def search(self, query: str, limit: int = 10) -> list[str]:
        """Ids of the top ``limit`` hits, best first."""
        results = self.searcher.search(self.parser.parse(query), limit=limit)
        return [hit["id"] for hit in results]

    def search_and_highlight(self, query: str, limit: int = 10) -> list[tuple[str, str]]:
        """(id, highlighted body fragment) for the top hits, as the tutorial page shows them."""
        results = self.searcher.search(self.parser.parse(query), limit=limit)
        return [(hit["id"], hit.highlights("body")) for hit in results]

    def close(self) -> None:
        self.searcher.close()
        self.ix.close()
