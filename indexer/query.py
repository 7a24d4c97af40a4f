"""The query language, parsed into a small tree that every backend compiles.

Syntax (documented in docs/cli.md and on the search page)::

    飞桨 开源              words separated by spaces: articles with all of them first
    +飞桨 开源             a word with + must match
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

It is also bounded, so no input makes it (or anything that walks the tree)
recurse without limit:

- Parentheses nested deeper than ``MAX_DEPTH`` group nothing more: the
  extra ``(`` and their ``)`` only separate words.
- ``NOT NOT x`` is ``x``: a run of NOTs is read as one NOT or none.
- A date past the calendar's ends is clamped: a start before 0001-01-01 is
  an open start, an end after 9999-12-31 an open end, and a range that lies
  wholly outside the calendar (``date:>9999``, ``date:<0001``) matches
  nothing. A range written the wrong way round (``date:2020..2019``) is
  read the right way round, as the API's ``from``/``to`` are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time

TEXT_FIELDS = ("title", "body")
FILTER_FIELDS = {"source": "source", "tag": "tags", "tags": "tags"}


@dataclass(frozen=True)
class Text:
    """A word or run of words the user typed; analysis decides how it becomes terms."""

    text: str
    field: str | None = None
    # Set when a strict search found nothing: then the pieces of a typed run may match apart.
    relaxed: bool = False
    # Typed with a leading +: documents without it are never shown, not even to fill a page.
    required: bool = False


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
    """Documents dated within ``[start, end)``; either end may be open, and start == end matches nothing."""

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
_PUNCT_TABLE = str.maketrans("“”＂（）：－＋", '"""():-+')


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


# date() holds years 1 to 9999. The Gregorian calendar repeats every 400
# years (146097 days), so a day in year 0 or 10000 (the day after 9999's
# last) takes its number from the same day 400 years away.
_CYCLE_YEARS, _CYCLE_DAYS = 400, 146_097
_FIRST_DAY, _LAST_DAY = date.min.toordinal(), date.max.toordinal()


def _day_number(year: int, month: int, day: int) -> int:
    """``date.toordinal()`` numbering, extended to years 0 and 10000; ValueError for no such day."""
    if year < date.min.year:
        return date(year + _CYCLE_YEARS, month, day).toordinal() - _CYCLE_DAYS
    if year > date.max.year:
        return date(year - _CYCLE_YEARS, month, day).toordinal() + _CYCLE_DAYS
    return date(year, month, day).toordinal()


def _bound_day(value: str, end: bool) -> int | None:
    """The first day of the year, month or day ``value`` names, or with ``end`` the first day after it.

    None when ``value`` is not such a date (2024-13, 2024-02-30, abc).
    """
    m = _DATE_RE.fullmatch(value)
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        first = _day_number(year, month, day)
    except ValueError:
        return None
    if not end:
        return first
    # An end bound includes the whole year, month or day it names.
    if m.group(3):
        return first + 1
    if m.group(2):
        return _day_number(year + month // 12, month % 12 + 1, 1)
    return _day_number(year + 1, 1, 1)


# Any range [t, t) is empty; this one is safe for a backend that makes the
# end inclusive by taking a microsecond off it.
NO_DATES = DateRange(datetime.max, datetime.max)


def _days_range(start: int | None, end: int | None) -> DateRange:
    """The range of days ``[start, end)``, clamped to the days a datetime can hold."""
    if start is not None and start < _FIRST_DAY:
        start = None
    if end is not None and end > _LAST_DAY:
        end = None
    if (start is not None and start > _LAST_DAY) or (end is not None and end <= _FIRST_DAY):
        return NO_DATES
    if start is not None and end is not None and start >= end:
        return NO_DATES
    return DateRange(_midnight(start), _midnight(end))


def _midnight(day: int | None) -> datetime | None:
    return None if day is None else datetime.combine(date.fromordinal(day), time.min)


def parse_date_range(value: str) -> DateRange | None:
    """``2025``, ``2024-01..2024-06``, ``>=2025-03-01``, ``<2024``, ``..2023`` → DateRange, else None."""
    value = value.strip()
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            return _compared(op, value[len(op) :])
    if ".." in value:
        low, _, high = value.partition("..")
        return _between(low, high)
    start = _bound_day(value, end=False)
    return None if start is None else _days_range(start, _bound_day(value, end=True))


def _compared(op: str, bound: str) -> DateRange | None:
    # ">" starts after the named period; "<=" ends after it.
    day = _bound_day(bound, end=op in (">", "<="))
    if day is None:
        return None
    return _days_range(day, None) if op.startswith(">") else _days_range(None, day)


def _between(low: str, high: str) -> DateRange | None:
    start = _bound_day(low, end=False) if low else None
    stop = _bound_day(high, end=True) if high else None
    if (low and start is None) or (high and stop is None) or (start is None and stop is None):
        return None
    if start is not None and stop is not None and start >= stop:
        # Typed the wrong way round (2020..2019): the API's from/to swap too.
        start, stop = _bound_day(high, end=False), _bound_day(low, end=True)
    return _days_range(start, stop)


# Parentheses deeper than this only separate words. Every level costs a few
# stack frames here and in each walk over the tree (synonyms, compilers,
# Whoosh's own query objects), far below Python's limit of 1000.
MAX_DEPTH = 32
# Words, phrases, filters and dates after this many are ignored. Whoosh
# chains an AND's matchers one inside the next, a stack frame each, and
# every clause costs time; the service's 256 characters hold at most 128.
MAX_CLAUSES = 128


# The grammar, with AND implicit between neighbours:
#   sequence := (or_expr | AND)*
#   or_expr  := unary (OR unary)*
#   unary    := NOT* (-word | -"phrase" | atom)
#   atom     := ( sequence ) | "phrase" | field:value | word
class _Parser:
    """Recursive descent over the tokens, to at most MAX_DEPTH groups."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        # Whitespace matters only to separate a field prefix from its value.
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        # How many "(" beyond MAX_DEPTH were skipped: their ")" must not close a real group.
        self.flattened = 0
        self.clauses = 0

    def _peek(self) -> tuple[str, str] | None:
        """The next token that means something, skipping spaces and the parentheses beyond MAX_DEPTH.

        None at the end, and after MAX_CLAUSES clauses: the rest is ignored.
        """
        if self.clauses >= MAX_CLAUSES:
            return None
        while self.i < len(self.tokens):
            kind = self.tokens[self.i][0]
            if kind == "lparen" and self.depth >= MAX_DEPTH:
                self.flattened += 1
            elif kind == "rparen" and self.flattened:
                self.flattened -= 1
            elif kind != "ws":
                break
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
            if tok is None or tok[0] == "rparen":
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
        # A run of NOTs is read in a loop, not by recursion: NOT NOT x is x.
        negations = 0
        while self._peek() == ("word", "NOT"):
            self.i += 1
            negations += 1
        tok = self._peek()
        if tok is None or tok[0] == "rparen":
            # A ")" is never an operand: it closes the group (or is stray).
            return None
        node = self._operand(*tok)
        if node is None or negations % 2 == 0:
            return node
        return _negate(node)

    def _operand(self, kind: str, value: str) -> Node | None:
        if kind != "lparen":
            self.clauses += 1
        if kind == "word" and value == "-" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][0] == "quoted":
            self.i += 2
            inner = self.tokens[self.i - 1][1][1:-1]
            return Not(Phrase(inner)) if inner.strip() else None
        if kind == "word" and value.startswith("-") and len(value) > 1:
            self.i += 1
            child = self._atom_from_word(value[1:])
            return Not(child) if child is not None else None
        if kind == "word" and value == "+" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][0] == "quoted":
            self.i += 1  # +"phrase": a phrase is required anyway
            return self._atom()
        if kind == "word" and value.startswith("+") and len(value) > 1 and value.strip("+"):
            self.i += 1
            child = self._atom_from_word(value.lstrip("+"))
            return Text(child.text, required=True) if isinstance(child, Text) else child
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
            return self._group()
        if kind == "quoted":
            words = value[1:-1]
            return Phrase(words) if words.strip() else None
        if kind == "field":
            return self._field(value[:-1])
        return Text(value)

    def _group(self) -> Node | None:
        # Only called below MAX_DEPTH: _peek never yields a deeper "(".
        self.depth += 1
        inner = self._sequence()
        self.depth -= 1
        if self._peek() == ("rparen", ")"):
            self.i += 1
        return inner

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


def _negate(node: Node) -> Node:
    return node.child if isinstance(node, Not) else Not(node)


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
    # A stack rather than recursion: trees built by callers need not be shallow.
    stack: list[Node] = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, Text | Phrase):
            found.append(n)
        elif isinstance(n, And | Or):
            stack.extend(reversed(n.children))
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


@dataclass(frozen=True)
class TypedDate:
    """A ``date:`` filter as typed in a query, for a page that shows it as a chip and in its date inputs."""

    # The filter as typed ("date:2024-01..2024-06") and the range it means.
    text: str
    range: DateRange
    # The query without it (what removing the chip searches for).
    rest: str

    @property
    def first_day(self) -> date | None:
        """The range's first day, or None when it is open at the start."""
        return self.range.start.date() if self.range.start is not None else None

    @property
    def last_day(self) -> date | None:
        """The range's last day (its end is exclusive), or None when it is open at the end."""
        end = self.range.end
        if end is None or end == datetime.max:
            return None
        return date.fromordinal(end.toordinal() - 1) if end.toordinal() > 1 else None


_TYPED_DATE_RE = re.compile(r'(?<![^\s()])date:(?:"[^"]*"|[^\s()"]+)', re.IGNORECASE)


def _top_dates(node: Node | None) -> list[DateRange]:
    """The date ranges every match must satisfy: the query itself, or children of its top AND."""
    children = node.children if isinstance(node, And) else (node,) if node is not None else ()
    return [c for c in children if isinstance(c, DateRange)]


def typed_dates(text: str) -> list[TypedDate]:
    """The ``date:`` filters of ``text`` that narrow the whole query (not under OR or NOT), in order."""
    folded = _fold_punct(text)
    ranges = _top_dates(parse_query(folded))
    found: list[TypedDate] = []
    for m in _TYPED_DATE_RE.finditer(folded):
        rest = " ".join((folded[: m.start()] + " " + folded[m.end() :]).split())
        left = _top_dates(parse_query(rest))
        # It is one of the top-level ranges exactly when taking it out leaves the others.
        gone = [r for r in ranges if r not in left or ranges.count(r) > left.count(r)]
        if len(left) == len(ranges) - 1 and gone:
            found.append(TypedDate(m.group(), gone[0], " ".join((text[: m.start()] + " " + text[m.end() :]).split())))
    return found
