"""Pure helpers for the benchmark: percentiles, ratios, formatting, query files and scale documents."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PERCENTILES = (50.0, 95.0, 99.0)
# A paragraph shorter than this is a heading, a list stub or a short code line, not a passage worth indexing.
MIN_PARAGRAPH_CHARS = 20
_HAN_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile (0-100) with linear interpolation between closest ranks (numpy's default); NaN if empty."""
    # Checked first, so a wrong pct fails even on a run that measured nothing.
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile must be between 0 and 100, not {pct}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Latencies:
    """Per-query timings of one system in one mode, plus the queries that raised."""

    ms: list[float] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def pct(self, p: float) -> float:
        """The p-th percentile in milliseconds (NaN when nothing succeeded)."""
        return percentile(self.ms, p)

    def mean(self) -> float:
        """Mean latency in milliseconds (NaN when nothing succeeded)."""
        return sum(self.ms) / len(self.ms) if self.ms else math.nan

    def serial_qps(self) -> float:
        """Queries per second one thread sustains at this mean latency."""
        mean = self.mean()
        return 1000.0 / mean if mean and not math.isnan(mean) else math.nan


def ratio(baseline: float | None, value: float | None) -> float:
    """baseline ÷ value: above 1 means the value (a time, size or memory) is smaller than the baseline's."""
    if baseline is None or value is None or math.isnan(baseline) or math.isnan(value) or value <= 0:
        return math.nan
    return baseline / value


def fmt_ratio(value: float) -> str:
    """A ratio as '2.31×', or '–' when there is none."""
    if math.isnan(value):
        return "–"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def fmt_ms(value: float) -> str:
    """Milliseconds with precision that suits their size."""
    if math.isnan(value):
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_num(value: float, digits: int = 1) -> str:
    """A number with thousands separators, or '–' for NaN."""
    if math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; cells are converted with str()."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def load_queries(path: Path) -> list[tuple[str, str]]:
    """(kind, query) rows of a TSV file with a ``kind<TAB>query`` header."""
    rows: list[tuple[str, str]] = []
    # Not csv: queries contain double quotes that must stay literal.
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["kind", "query"]:
            raise ValueError(f"{path}: expected header 'kind<TAB>query', got {header}")
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            kind, sep, query = line.partition("\t")
            if not sep or not query.strip():
                raise ValueError(f"{path}:{lineno}: expected kind<TAB>query")
            rows.append((kind.strip(), query.strip()))
    return rows


def stratified(queries: Sequence[tuple[str, str]], per_kind: int) -> list[tuple[str, str]]:
    """At most ``per_kind`` queries of each kind, spread evenly over that kind's rows, in file order."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for row in queries:
        by_kind.setdefault(row[0], []).append(row)
    chosen: set[tuple[str, str]] = set()
    for rows in by_kind.values():
        chosen.update(evenly_spaced(rows, per_kind))
    return [row for row in queries if row in chosen]


def evenly_spaced(items: Sequence[Any], n: int) -> list[Any]:
    """``n`` items spread evenly over ``items`` (all of them when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def is_passage(paragraph: str) -> bool:
    """True for a paragraph worth a scale document: long enough and with some words (Chinese, English, code)."""
    return len(paragraph) >= MIN_PARAGRAPH_CHARS and any(ch.isalpha() for ch in paragraph)


def has_chinese(text: str) -> bool:
    """True when ``text`` contains a Han character."""
    return _HAN_RE.search(text) is not None


def paragraph_docs(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One document per passage of each article: id ``<article id>#<n>``, the article's title and metadata."""
    for record in records:
        n = 0
        for line in str(record.get("body") or "").split("\n"):
            paragraph = line.strip()
            if not is_passage(paragraph):
                continue
            n += 1
            yield {
                "id": f"{record['id']}#{n}",
                "title": record.get("title") or "",
                "body": paragraph,
                "date": record.get("date"),
                "source": record.get("source") or "",
                "url": record.get("url"),
                "tags": record.get("tags") or [],
            }


def sample_docs(docs: Sequence[dict[str, Any]], n: int) -> tuple[list[dict[str, Any]], int]:
    """``n`` documents spread evenly over ``docs``; past its end, copies with new ids. Returns (docs, copies)."""
    if n <= len(docs):
        return evenly_spaced(docs, n), 0
    out = list(docs)
    copies = 0
    while len(out) < n:
        copies += 1
        for doc in docs[: n - len(out)]:
            out.append({**doc, "id": f"{doc['id']}~r{copies}"})
    return out, n - len(docs)


def write_jsonl(docs: Iterable[dict[str, Any]], path: Path) -> int:
    """Write documents as JSON Lines; return how many."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
            count += 1
    return count


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path``, not following symlinks."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
