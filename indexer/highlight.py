"""Highlighting: find query terms in stored text and wrap them in ``<mark>``.

Whoosh's highlighter re-segments every stored article for every hit, which
costs more than the search itself on long Chinese articles. Here each query
term (already folded: half-width, lowercase, simplified) is located with a
regular expression that matches every way of writing it, so the text itself
is neither segmented nor folded. The matches land on the characters as
written, and everything outside ``<mark>`` is HTML-escaped.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable

from .analysis import STOP_WORDS, folded_pattern, normalize

SNIPPET_CHARS = 160
# How much context to show before the first match of the chosen passage.
LEAD_CHARS = 30
MAX_MATCHES_PER_TERM = 2000
_SENTENCE_END = "。！？!?；;\n"
_WS_RE = re.compile(r"\s+")

Span = tuple[int, int]


def _kind(ch: str) -> str:
    ch = normalize(ch)
    if ch.isascii() and ch.isalpha():
        return "a"
    if ch.isascii() and ch.isdigit():
        return "d"
    return ""


def _at_boundary(text: str, start: int, end: int) -> bool:
    # An English word or number must not be matched inside a longer one of the
    # same kind: "ai" not in "email", "4" not in "2024"; "python" in "python3" is fine.
    first, last = _kind(text[start]), _kind(text[end - 1])
    if first and start > 0 and _kind(text[start - 1]) == first:
        return False
    return not (last and end < len(text) and _kind(text[end]) == last)


def find_spans(text: str, terms: Iterable[str], deadline: float | None = None) -> list[Span]:
    """Non-overlapping ``(start, end)`` character spans of ``terms`` in ``text``, merged when adjacent.

    Longer terms win over the shorter terms they contain, so the whole
    identifier or word is marked. Once ``deadline`` (a ``time.monotonic()``
    value) has passed, the terms not yet looked for are left unmarked.
    """
    found: list[Span] = []
    for term in {t for t in terms if t and t not in STOP_WORDS}:
        if deadline is not None and time.monotonic() >= deadline:
            break
        count = 0
        # Only an English word or number can run on into its neighbours.
        bounded = bool(_kind(term[0]) or _kind(term[-1]))
        for match in folded_pattern(term).finditer(text):
            start, end = match.span()
            if not bounded or _at_boundary(text, start, end):
                found.append((start, end))
                count += 1
                if count >= MAX_MATCHES_PER_TERM:
                    break
    found.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    spans: list[Span] = []
    for start, end in found:
        if spans and start < spans[-1][1]:
            if end > spans[-1][1] and start == spans[-1][0]:
                spans[-1] = (start, end)
            continue
        if spans and start == spans[-1][1]:
            # 混合 + 专家 read as one highlighted phrase.
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def render(text: str, spans: Iterable[Span], start: int = 0, end: int | None = None) -> str:
    """HTML for ``text[start:end]`` with the spans marked; whitespace runs become one space."""
    end = len(text) if end is None else end
    out: list[str] = []
    pos = start
    for s, e in spans:
        if e <= start or s >= end:
            continue
        s, e = max(s, start), min(e, end)
        out.append(html.escape(_WS_RE.sub(" ", text[pos:s])))
        out.append(f"<mark>{html.escape(_WS_RE.sub(' ', text[s:e]))}</mark>")
        pos = e
    out.append(html.escape(_WS_RE.sub(" ", text[pos:end])))
    return "".join(out)


def highlight_all(text: str, terms: Iterable[str], deadline: float | None = None) -> str:
    """The whole text, escaped, with every match marked (used for titles); see ``find_spans`` for ``deadline``."""
    return render(text, find_spans(text, terms, deadline))


def _best_window(spans: list[Span], width: int) -> int:
    """Index of the span that starts the window covering the most matched text."""
    best, best_score = 0, -1
    j = 0
    covered = 0
    for i, (s, _) in enumerate(spans):
        if i > 0:
            covered -= spans[i - 1][1] - spans[i - 1][0]
        j = max(j, i)
        while j < len(spans) and spans[j][1] <= s + width:
            covered += spans[j][1] - spans[j][0]
            j += 1
        if covered > best_score:
            best, best_score = i, covered
    return best


def snippet(text: str, terms: Iterable[str], width: int = SNIPPET_CHARS, deadline: float | None = None) -> str:
    """About ``width`` characters of ``text`` around its best-matching passage, as safe HTML.

    Matched terms are wrapped in ``<mark>``; an ellipsis shows where the
    passage was cut. With no match, the snippet is the start of the text.
    See ``find_spans`` for ``deadline``.
    """
    spans = find_spans(text, terms, deadline)
    n = len(text)
    if not spans:
        start = 0
    else:
        first = spans[_best_window(spans, width - LEAD_CHARS)][0]
        start = max(0, first - LEAD_CHARS)
        # Start at a sentence boundary when one is close before the match.
        for i in range(first - 1, start - 1, -1):
            if text[i] in _SENTENCE_END:
                start = i + 1
                break
    end = min(n, start + width)
    if end - start < width:
        start = max(0, end - width)
    while start < end and text[start].isspace():
        start += 1
    body = render(text, spans, start, end).strip()
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < n else ""
    return f"{prefix}{body}{suffix}"
