"""Highlighting: find what a query matched in stored text and wrap it in ``<mark>``.

Whoosh's highlighter re-segments every stored article for every hit, which
costs more than the search itself on long Chinese articles. Here each thing
to mark (a query unit's form: folded terms that sit side by side, see
``indexer.plan.highlight_forms``) is located with a regular expression that
matches every way of writing it, so the text itself is neither segmented nor
folded. A typed run is marked only where its pieces stand together (大模型,
not the 大 of 大会), an identifier only as a whole (4.5, not the 5 of 0.5B).
The matches land on the characters as written, and everything outside
``<mark>`` is HTML-escaped.

Snippets are cut from the article's text with Markdown and HTML markup
taken out (``plain_text``); the stored text stays as it was.
"""

from __future__ import annotations

import bisect
import functools
import html
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from .analysis import STOP_WORDS, folded_pattern, normalize

# A snippet's length in columns: a Chinese character takes two, a Latin letter one. About 140
# columns is three lines of the result list on a 360 px phone, whatever the script.
SNIPPET_COLUMNS = 140
# How much context to show before the first match of the chosen passage, in columns.
LEAD_COLUMNS = 24
# A word cut at the snippet's edge is moved out whole when it is at most this long, else dropped.
MAX_WORD_STRETCH = 16
MAX_MATCHES_PER_TERM = 2000
_SENTENCE_END = "。！？!?；;\n"
# Without a sentence end, a passage starts after one of these when it is this close.
_BREAKS = "，、：:,） )」』】》 \t"
_BREAK_LOOKAHEAD = 10
_WS_RE = re.compile(r"\s+")
# Characters of a Latin word, number or identifier: a snippet never starts or ends inside a run of them.
_WORDISH_RE = re.compile(r"[A-Za-z0-9_\-.+#/:@%&=?~\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
_IDENT_SEP_RE = re.compile(r"[-_.]")

Span = tuple[int, int]
# One form of a query unit: folded terms that sit side by side (a single term for a plain word).
Form = tuple[str, ...]


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


def _is_han(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF" and ch.isalpha()


def _term_pattern(term: str) -> str:
    """The pattern of one folded term: an identifier also as written with other separators.

    A query for python3 matches "Python 3", and 4.5 matches "4 5" (the index
    holds an identifier's pieces at successive positions), so both are marked.
    """
    if term.isascii() and any(c.isalnum() for c in term) and re.fullmatch(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*", term):
        pieces = re.findall(r"[a-z]+|[0-9]+|[-_.]", term)
        out: list[str] = []
        for i, piece in enumerate(pieces):
            if _IDENT_SEP_RE.fullmatch(piece):
                out.append(r"[-_. ]")
            else:
                if i > 0 and not _IDENT_SEP_RE.fullmatch(pieces[i - 1]):
                    out.append(r"[-_. ]?")  # python3 and "python 3" alike
                out.append(folded_pattern(piece).pattern)
        return "".join(out)
    return folded_pattern(term).pattern


@functools.lru_cache(maxsize=1024)
def _form_pattern(form: Form) -> re.Pattern[str]:
    """The pattern of a unit's form: its terms side by side, with only spacing or punctuation between words."""
    parts: list[str] = []
    for i, term in enumerate(form):
        if i > 0:
            han = _is_han(form[i - 1][-1]) and _is_han(term[0])
            # Chinese pieces of one run stand together (a line break may fall between them);
            # words of a phrase are separated by a space or a little punctuation.
            parts.append(r"\s{0,2}" if han else r"(?:[^\w]|_){0,3}")
        parts.append(_term_pattern(term))
    return re.compile("".join(parts))


def _as_forms(marks: Iterable[str | Sequence[str]]) -> list[Form]:
    forms: list[Form] = []
    for mark in marks:
        form = (mark,) if isinstance(mark, str) else tuple(mark)
        form = tuple(t for t in form if t)
        # A stop word alone is never marked (的, 是); inside a phrase it is part of the phrase.
        if form and not (len(form) == 1 and form[0] in STOP_WORDS):
            forms.append(form)
    return list(dict.fromkeys(forms))


def find_matches(
    text: str, marks: Iterable[str | Sequence[str]], deadline: float | None = None
) -> list[tuple[int, int, int]]:
    """Every ``(start, end, mark index)`` where a mark is found, before spans are merged.

    ``marks`` are forms (tuples of folded terms that must stand together) or
    single terms. Once ``deadline`` (a ``time.monotonic()`` value) has passed,
    the marks not yet looked for are left unfound.
    """
    found: list[tuple[int, int, int]] = []
    for index, form in enumerate(_as_forms(marks)):
        if deadline is not None and time.monotonic() >= deadline:
            break
        count = 0
        # Only an English word or number can run on into its neighbours.
        bounded = bool(_kind(form[0][0]) or _kind(form[-1][-1]))
        for match in _form_pattern(form).finditer(text):
            start, end = match.span()
            if start < end and (not bounded or _at_boundary(text, start, end)):
                found.append((start, end, index))
                count += 1
                if count >= MAX_MATCHES_PER_TERM:
                    break
    return found


def merge_spans(matches: Iterable[tuple[int, int, int]]) -> list[Span]:
    """Non-overlapping spans from matches: the longer wins where they overlap, touching ones join."""
    ordered = sorted(((s, e) for s, e, _ in matches), key=lambda m: (m[0], -(m[1] - m[0])))
    spans: list[Span] = []
    for start, end in ordered:
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


def find_spans(text: str, marks: Iterable[str | Sequence[str]], deadline: float | None = None) -> list[Span]:
    """Non-overlapping ``(start, end)`` character spans of ``marks`` in ``text``, merged when adjacent.

    Longer matches win over the shorter ones they contain, so the whole
    identifier or word is marked. See ``find_matches`` for ``marks`` and ``deadline``.
    """
    return merge_spans(find_matches(text, marks, deadline))


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


def highlight_all(text: str, marks: Iterable[str | Sequence[str]], deadline: float | None = None) -> str:
    """The whole text, escaped, with every match marked (used for titles); see ``find_matches``."""
    return render(text, find_spans(text, marks, deadline))


# A paragraph ends at a blank line (spaces on it and further blank lines included).
_PARAGRAPH_BREAK_RE = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*(?:\r\n|\r|\n)\s*")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def _escape_lines(text: str) -> str:
    # The single line breaks of a paragraph are kept: a plain-text article often has one line per paragraph.
    return _LINE_BREAK_RE.sub("<br>", html.escape(text))


def render_paragraphs(text: str, spans: Sequence[Span]) -> str:
    """The whole text as safe HTML paragraphs (``<p>`` at blank lines, ``<br>`` at line breaks), spans marked.

    ``spans`` are sorted, non-overlapping character offsets into ``text``, as
    ``find_spans`` returns them; a span across a paragraph break is marked in
    each paragraph. Nothing else in the text is interpreted: Markdown shows as written.
    """
    bounds: list[Span] = []
    pos = 0
    for m in _PARAGRAPH_BREAK_RE.finditer(text):
        bounds.append((pos, m.start()))
        pos = m.end()
    bounds.append((pos, len(text)))
    out: list[str] = []
    i = 0
    for start, end in bounds:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        # Spans are sorted, so those wholly before this paragraph are never looked at again.
        while i < len(spans) and spans[i][1] <= start:
            i += 1
        parts: list[str] = []
        at, j = start, i
        while j < len(spans) and spans[j][0] < end:
            s, e = max(spans[j][0], start), min(spans[j][1], end)
            parts.append(_escape_lines(text[at:s]))
            parts.append(f"<mark>{_escape_lines(text[s:e])}</mark>")
            at = e
            j += 1
        parts.append(_escape_lines(text[at:end]))
        out.append(f"<p>{''.join(parts)}</p>")
    return "\n".join(out)


# -- plain text for snippets -----------------------------------------------------------------------

_TAG_RE = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)(?:\s[^<>]{0,500})?/?>")
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr li"
    " main nav ol p pre section table tbody td tfoot th thead tr ul".split()
)
# Each (pattern, replacement, needs) takes one kind of markup out; they run in this order. A pattern
# runs only when the text holds one of its ``needs``, strings every match contains: a substring test
# runs in C over the whole text, while a pattern tries to match at every character. Of the 8,682 shared
# articles 14% have emphasis or code marks and 19% a "|"; over the benchmark queries' snippets this
# took the markup passes from 1.2 s to 0.6 s of the 3.4 s spent making snippets.
_Markup = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str], tuple[str, ...]]
_MARKUP: list[_Markup] = [
    # Comments never show.
    (re.compile(r"<!--.*?-->", re.S), " ", ("<!--",)),
    # Escaped line breaks and tabs left by a careless export ("\n" as two characters).
    (re.compile(r"\\[nrt]"), " ", ("\\",)),
    # Fenced code markers, tables' separator rows and horizontal rules: lines of markup only.
    (re.compile(r"^[ \t]*(?:```|~~~)[^\n]*$", re.M), " ", ("```", "~~~")),
    (re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$", re.M), " ", ("---",)),
    (re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.M), " ", ("-", "*", "_")),
    # Images keep their description, links their text.
    (re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)"), r"\1", ("![",)),
    (re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)"), r"\1", ("](",)),
    (re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]"), r"\1", ("][",)),
    # HTML tags (the text between them stays): a block's tag is a break, an inline one (<b>) nothing.
    (_TAG_RE, lambda m: " " if m.group(1).lower() in _BLOCK_TAGS else "", ("<",)),
    # Line starts: headings, quotes, list bullets.
    (re.compile(r"^[ \t]*#{1,6}[ \t]+", re.M), "", ("#",)),
    (re.compile(r"^[ \t]*(?:>[ \t]?)+", re.M), "", (">",)),
    (re.compile(r"^[ \t]*[-*+][ \t]+", re.M), "", ("-", "*", "+")),
    # Emphasis, strike-through and code spans: the marks go, the words stay. A lone _ or * inside
    # a word (x86_64, a*b) is text.
    (re.compile(r"\*\*|__(?=\S)|(?<=\S)__|~~|`+"), "", ("**", "__", "~~", "`")),
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), r"\1", ("*",)),
    # Table cells.
    (re.compile(r"[ \t]*\|[ \t]*"), " ", ("|",)),
]


def plain_text(text: str) -> str:
    """``text`` with Markdown and HTML markup and escaped line breaks taken out, for snippets."""
    for pattern, replacement, needs in _MARKUP:
        if any(need in text for need in needs):
            text = pattern.sub(replacement, text)
    if "&" in text:
        text = html.unescape(text)
    return text


# -- choosing the passage --------------------------------------------------------------------------


class _Widths(dict[int, str]):
    """Each character's display width as one character, \x01 or \x02, for ``str.translate`` (filled as met)."""

    def __missing__(self, code: int) -> str:
        mark = "\x02" if unicodedata.east_asian_width(chr(code)) in "WF" else "\x01"
        self[code] = mark
        return mark


_WIDTHS = _Widths()


@functools.lru_cache(maxsize=32)
def _width_marks(text: str) -> str:
    # Counting the wide characters of a slice of this string runs in C; a Python loop over each
    # character's width cost most of a search and highlight on long articles.
    return text.translate(_WIDTHS)


def _span_columns(marks: str, start: int, end: int) -> int:
    return end - start + marks.count("\x02", start, end)


def _end_after(text: str, start: int, columns: int) -> int:
    """The index ``columns`` display columns after ``start`` (the first at or past them; the end at most)."""
    if columns <= 0:
        return start
    marks, n = _width_marks(text), len(text)
    hi = min(n, start + columns)  # every character takes at least one column
    if _span_columns(marks, start, hi) < columns:
        return n
    return bisect.bisect_left(range(start, hi + 1), columns, key=lambda i: _span_columns(marks, start, i)) + start


def _start_before(text: str, end: int, columns: int) -> int:
    """The index ``columns`` display columns before ``end`` (the last at or past them; the start at least)."""
    if columns <= 0:
        return end
    marks = _width_marks(text)
    lo = max(0, end - columns)
    if _span_columns(marks, lo, end) < columns:
        return 0
    # Columns from i to end shrink as i grows: the last i that still has enough.
    return lo + bisect.bisect_right(range(lo, end + 1), -columns, key=lambda i: -_span_columns(marks, i, end)) - 1


def _best_match(matches: list[tuple[int, int, int]], text: str, columns: int) -> int:
    """The start of the passage of ``columns`` with the most distinct marks, then the rarest in the article.

    A mark found fewer times in the article weighs more, so the window holding
    the one mention of 混合专家 beats one with three loose 专家.
    """
    matches = sorted(matches)
    seen = Counter(m for _, _, m in matches)
    weight = {m: 1.0 / n for m, n in seen.items()}
    inside: Counter[int] = Counter()
    best_start, best_key = matches[0][0], (-1, -1.0)
    j = 0
    marks = _width_marks(text)
    for i, (start, _, _) in enumerate(matches):
        limit = -1
        while j < len(matches):
            end = matches[j][1]
            # In the window when it ends at most ``limit`` (``_end_after``), decided without it where
            # the columns tell: up to ``end`` they are under ``columns``, or past the one wide
            # character that can overrun it. A long article has hundreds of matches to slide over.
            if end - start >= columns + 2:
                break
            spanned = _span_columns(marks, start, end)
            if spanned > columns + 1:
                break
            if spanned >= columns:
                if limit < 0:
                    limit = _end_after(text, start, columns)
                if end > limit:
                    break
            inside[matches[j][2]] += 1
            j += 1
        # Fewer distinct marks than the best window cannot beat it, whatever their weights.
        if len(inside) >= best_key[0]:
            key = (len(inside), sum(weight[m] for m in inside))
            if key > best_key:
                best_start, best_key = start, key
        if j > i:
            mark = matches[i][2]
            inside[mark] -= 1
            if not inside[mark]:
                del inside[mark]
        else:
            j = i + 1
    return best_start


def _wordish(ch: str) -> bool:
    return bool(_WORDISH_RE.match(ch))


def _word_start(text: str, i: int) -> int:
    """Where the Latin word or identifier running through ``text[i - 1:i + 1]`` starts (``i`` if none)."""
    while i > 0 and _wordish(text[i - 1]):
        i -= 1
    return i


def _word_end(text: str, i: int) -> int:
    """Where the Latin word or identifier that ``text[i]`` is in ends (``i`` if none)."""
    while i < len(text) and _wordish(text[i]):
        i += 1
    return i


def _cut_start(text: str, start: int) -> int:
    # Never inside a word: take the whole word in when it is short, else start after it.
    if 0 < start < len(text) and _wordish(text[start - 1]) and _wordish(text[start]):
        begin = _word_start(text, start)
        return begin if start - begin <= MAX_WORD_STRETCH else _word_end(text, start)
    return start


def _cut_end(text: str, end: int, floor: int) -> int:
    if 0 < end < len(text) and _wordish(text[end - 1]) and _wordish(text[end]):
        finish = _word_end(text, end)
        if finish - end <= MAX_WORD_STRETCH:
            return finish
        begin = _word_start(text, end)
        return begin if begin > floor else end
    return end


def _boundary_after(text: str, start: int, first: int) -> int:
    """Where to start a passage near ``start``: after a sentence end before ``first``, else after a break."""
    for i in range(first - 1, start - 1, -1):
        if text[i] in _SENTENCE_END:
            return i + 1
    # No sentence starts close before the match: start after a comma or a space, not inside a word.
    for i in range(start, min(start + _BREAK_LOOKAHEAD, first)):
        if text[i] in _BREAKS:
            return i + 1
    return start


def _around_marks(spans: list[Span], start: int, end: int) -> tuple[int, int]:
    """Move the passage's edges off any mark they cut: a mark is shown whole or not at all."""
    for s, e in spans:
        if s < start < e:
            start = s if start - s <= MAX_WORD_STRETCH else e
        if s < end < e:
            end = e if e - end <= MAX_WORD_STRETCH else s
    return start, max(start, end)


def snippet(
    text: str, marks: Iterable[str | Sequence[str]], columns: int = SNIPPET_COLUMNS, deadline: float | None = None
) -> str:
    """About ``columns`` display columns of ``text`` around its best passage, as safe HTML.

    Markup is taken out first (``plain_text``). The passage has the most
    distinct query units, then the rarest; it starts at a sentence or word
    boundary and never cuts a Latin word or identifier. Matches are wrapped
    in ``<mark>``; an ellipsis shows where the text was cut. With no match,
    the snippet is the start of the text. See ``find_matches`` for ``deadline``.
    """
    text = plain_text(text)
    matches = find_matches(text, marks, deadline)
    n = len(text)
    start = 0
    if matches:
        first = _best_match(matches, text, columns - LEAD_COLUMNS)
        start = _start_before(text, first, LEAD_COLUMNS)
        start = min(_cut_start(text, _boundary_after(text, start, first)), first)
    while start < n and text[start].isspace():
        start += 1
    end = _end_after(text, start, columns)
    if end == n and start > 0:
        # Near the end of the text: show a full window rather than a short one.
        start = min(_cut_start(text, _start_before(text, n, columns)), start)
    end = _cut_end(text, end, start)
    spans = merge_spans(matches)
    start, end = _around_marks(spans, start, end)
    body = render(text, spans, start, end).strip()
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < n else ""
    return f"{prefix}{body}{suffix}"
