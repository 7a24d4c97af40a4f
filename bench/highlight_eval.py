"""Highlight precision: how many marks in titles and snippets are a lone Chinese character never typed alone.

A lone character marked in 大会 for the query 大模型, or the 有 of a
question, tells the reader nothing about why the article matched. A mark
counts as such when its text is one Chinese character and the query has no
word (a whitespace-separated token, without quotes, ``+``, ``-`` or a
``field:`` prefix) that is that character, folded the way zhsearch folds
text (width, case, traditional characters).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from indexer.analysis import normalize

_MARK_RE = re.compile(r"<mark>(.*?)</mark>", re.S)
_HAN_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_TOKEN_EDGES = "\"'“”‘’()（）+＋-"


@dataclass
class MarkCount:
    """Marks seen, how many were a lone character the query never typed alone, and examples."""

    marks: int = 0
    lone: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        """Lone-character marks as a share of all marks (0 when there were none)."""
        return self.lone / self.marks if self.marks else 0.0


def typed_alone(query: str) -> set[str]:
    """The single characters the query has as words of their own, folded."""
    alone: set[str] = set()
    for token in query.split():
        word = token.partition(":")[2] if ":" in token.strip(_TOKEN_EDGES) else token
        word = normalize(word.strip(_TOKEN_EDGES))
        if len(word) == 1:
            alone.add(word)
    return alone


def count_marks(query: str, htmls: Iterable[str], into: MarkCount | None = None, max_examples: int = 10) -> MarkCount:
    """Count the marks in ``htmls`` (titles and snippets shown for ``query``), lone characters apart."""
    count = into if into is not None else MarkCount()
    alone = typed_alone(query)
    for fragment in htmls:
        for match in _MARK_RE.finditer(fragment):
            text = html.unescape(match.group(1)).strip()
            count.marks += 1
            if len(text) == 1 and _HAN_RE.match(text) and normalize(text) not in alone:
                count.lone += 1
                if len(count.examples) < max_examples:
                    context = _MARK_RE.sub(r"\1", fragment)
                    at = context.find(text)
                    count.examples.append(f"{query} → {text} in “{context[max(0, at - 8) : at + 9]}”")
    return count
