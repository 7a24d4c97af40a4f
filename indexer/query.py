"""The query language, parsed into a small tree that every backend compiles.

Syntax (documented in docs/cli.md and on the search page)::

    飞桨 开源              words separated by spaces must all match
    "开源大模型"            a quoted phrase matches adjacent text
    飞桨 OR PaddlePaddle    either side may match (binds tighter than the implicit AND)
    -汽车   NOT 汽车        exclude
    (大模型 OR LLM) 微调    grouping
    title:混合专家          search one text field (title, body)
    source:开源观察  tag:MoE     exact filters ("quote" values with spaces)
    date:2025  date:2024-01..2024-06  date:>=2025-03-01  date:..2023

The parser never fails: a stray ``)``, an unbalanced quote or an unknown
``field:`` is read as plain text. Parsing is separate from analysis, so the
same tree can be run by the Whoosh backend or a remote engine.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

TEXT_FIELDS = ("title", "body")
FILTER_FIELDS = {"source": "source", "tag": "tags", "tags": "tags"}


@dataclass(frozen=True)
class Text:
    """A word or run of words the user typed; analysis decides how it becomes terms."""

    text: str
    field: str | None = None
    # Set when a strict search found nothing: then any one of the terms may match.
    relaxed: bool = False


@dataclass(frozen=True)
class Phrase:
    """A quoted phrase: its terms must be adjacent and in order."""

    text: str
    field: str | None = None


@dataclass(frozen=True)
class Filter:
    """An exact match on a keyword field (``source`` or ``tags``)."""

    field: str
    value: str


@dataclass(frozen=True)
class DateRange:
    """Documents dated within ``[start, end)``; either end may be open."""

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class And:
    """All children must match."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one child must match."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The child must not match."""

    child: Node


Node = Text | Phrase | Filter | DateRange | And | Or | Not

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<field>[A-Za-z]+):(?=\S)
  | (?P<quoted>"[^"]*")
  | (?P<word>[^\s()"]+)
  | (?P<stray>["])
    """,
    re.VERBOSE,
)
_DATE_RE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_KNOWN_FIELDS = set(TEXT_FIELDS) | set(FILTER_FIELDS) | {"date"}


# Chinese keyboards type full-width quotes, brackets and colons.
_PUNCT_TABLE = str.maketrans("“”＂（）：－", '"""():-')


def _fold_punct(text: str) -> str:
    return text.translate(_PUNCT_TABLE)


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    for m in _TOKEN_RE.finditer(_fold_punct(text)):
        kind = m.lastgroup or "ws"
        if kind == "ws":
            tokens.append(("ws", " "))
        elif kind == "stray":
            # An unbalanced quote separates words and is otherwise ignored.
            tokens.append(("ws", " "))
        else:
            tokens.append((kind, m.group()))
    return tokens


def _parse_date_bound(value: str, end: bool) -> datetime | None:
    m = _DATE_RE.fullmatch(value)
    if not m:
        return None
    year = int(m.group(1))
    month = int(m.group(2) or 1)
    day = int(m.group(3) or 1)
    try:
        start = datetime(year, month, day)
    except ValueError:
        return None
    if not end:
        return start
    # An end bound includes the whole year, month or day it names.
    if m.group(3):
        return start + timedelta(days=1)
    if m.group(2):
        return start + timedelta(days=calendar.monthrange(year, month)[1])
    return datetime(year + 1, 1, 1)


def parse_date_range(value: str) -> DateRange | None:
    """``2025``, ``2024-01..2024-06``, ``>=2025-03-01``, ``<2024``, ``..2023`` → DateRange, else None."""
    value = value.strip()
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            bound = value[len(op) :]
            if op == ">=":
                return _range(_parse_date_bound(bound, end=False), None, bound)
            if op == ">":
                return _range(_parse_date_bound(bound, end=True), None, bound)
            if op == "<=":
                return _range(None, _parse_date_bound(bound, end=True), bound)
            return _range(None, _parse_date_bound(bound, end=False), bound)
    if ".." in value:
        low, _, high = value.partition("..")
        start = _parse_date_bound(low, end=False) if low else None
        stop = _parse_date_bound(high, end=True) if high else None
        if (low and start is None) or (high and stop is None) or (start is None and stop is None):
            return None
        return DateRange(start, stop)
    start = _parse_date_bound(value, end=False)
    stop = _parse_date_bound(value, end=True)
    return DateRange(start, stop) if start else None


def _range(start: datetime | None, end: datetime | None, bound: str) -> DateRange | None:
    if start is None and end is None:
        return None
    return DateRange(start, end)


class _Parser:
    """Recursive descent: or_expr := and_expr; and_expr := unary (OR unary)*, with implicit AND."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        # Whitespace matters only to separate a field prefix from its value.
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def _peek(self) -> tuple[str, str] | None:
        while self.i < len(self.tokens) and self.tokens[self.i][0] == "ws":
            self.i += 1
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Node | None:
        node = self._sequence()
        # Anything left over is a stray ")" and what follows it: keep parsing.
        rest: list[Node] = [node] if node is not None else []
        while self._peek() is not None:
            self.i += 1
            more = self._sequence()
            if more is not None:
                rest.append(more)
        return _and(rest)

    def _sequence(self) -> Node | None:
        items: list[Node] = []
        while True:
            tok = self._peek()
            if tok is None or (tok[0] == "rparen" and self.depth > 0):
                break
            if tok[0] == "rparen":
                break
            if tok == ("word", "AND"):
                self.i += 1
                continue
            node = self._or()
            if node is not None:
                items.append(node)
        return _and(items)

    def _or(self) -> Node | None:
        left = self._unary()
        options = [left] if left is not None else []
        while self._peek() == ("word", "OR"):
            self.i += 1
            right = self._unary()
            if right is not None:
                options.append(right)
        if not options:
            return None
        return options[0] if len(options) == 1 else Or(tuple(options))

    def _unary(self) -> Node | None:
        tok = self._peek()
        if tok is None:
            return None
        kind, value = tok
        if kind == "word" and value == "NOT":
            self.i += 1
            child = self._unary()
            return Not(child) if child is not None else None
        if kind == "word" and value == "-" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][0] == "quoted":
            self.i += 2
            inner = self.tokens[self.i - 1][1][1:-1]
            return Not(Phrase(inner)) if inner.strip() else None
        if kind == "word" and value.startswith("-") and len(value) > 1:
            self.i += 1
            child = self._atom_from_word(value[1:])
            return Not(child) if child is not None else None
        if kind == "word" and value in ("OR", "AND"):
            # A dangling operator is just a word the user meant literally.
            self.i += 1
            return Text(value)
        return self._atom()

    def _atom_from_word(self, word: str) -> Node | None:
        # "-"+word, or -"phrase" written as one token by the lexer.
        if word.startswith('"') and word.endswith('"') and len(word) >= 2:
            return Phrase(word[1:-1]) if word[1:-1].strip() else None
        return Text(word)

    def _atom(self) -> Node | None:
        kind, value = self.tokens[self.i]
        self.i += 1
        if kind == "lparen":
            self.depth += 1
            inner = self._sequence()
            self.depth -= 1
            if self._peek() == ("rparen", ")"):
                self.i += 1
            return inner
        if kind == "rparen":
            return None
        if kind == "quoted":
            words = value[1:-1]
            return Phrase(words) if words.strip() else None
        if kind == "field":
            return self._field(value[:-1])
        return Text(value)

    def _field(self, name: str) -> Node | None:
        field = name.lower()
        if self.i >= len(self.tokens):
            return Text(name)
        kind, value = self.tokens[self.i]
        if field not in _KNOWN_FIELDS or kind not in ("word", "quoted"):
            # Not our syntax (e.g. "http://..." or "C:"), so it is text.
            return Text(name + ":")
        self.i += 1
        raw = value[1:-1] if kind == "quoted" else value
        if not raw.strip():
            return None
        if field in TEXT_FIELDS:
            return Phrase(raw, field) if kind == "quoted" else Text(raw, field)
        if field == "date":
            found = parse_date_range(raw)
            return found if found is not None else Text(f"{name}:{raw}")
        return Filter(FILTER_FIELDS[field], raw.strip())


def _and(items: list[Node]) -> Node | None:
    if not items:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))


def parse_query(text: str) -> Node | None:
    """Parse a query string into a tree; None when it holds nothing searchable."""
    return _Parser(_lex(text)).parse()


def positive_texts(node: Node | None) -> list[Text | Phrase]:
    """The words and phrases that count toward a match (not those under NOT)."""
    found: list[Text | Phrase] = []

    def walk(n: Node) -> None:
        if isinstance(n, Text | Phrase):
            found.append(n)
        elif isinstance(n, And | Or):
            for child in n.children:
                walk(child)

    if node is not None:
        walk(node)
    return found


def has_positive_text(node: Node | None) -> bool:
    """True when the query has something to rank by, not only filters and exclusions."""
    return bool(positive_texts(node))


def relax(node: Node | None) -> Node | None:
    """The looser form of a free-text query: any term of any word may match (ranking decides)."""
    if isinstance(node, Text):
        return Text(node.text, node.field, relaxed=True)
    if isinstance(node, And) and all(isinstance(c, Text) for c in node.children):
        return Or(tuple(Text(c.text, c.field, relaxed=True) for c in node.children if isinstance(c, Text)))
    return node


def is_free_text(node: Node | None) -> bool:
    """True for a query with no operators at all: one or more plain words."""
    if isinstance(node, Text):
        return node.field is None
    if isinstance(node, And):
        return all(isinstance(c, Text) and c.field is None for c in node.children)
    return False
