"""File formats: turn one corpus file into raw records (field mappings), each with its line.

A reader takes a path and yields ``RawRecord`` for every record it could
parse and ``Problem`` for everything it could not, so the caller can account
for every record. Readers decode the bytes themselves (``encodings``), never
validate fields (``corpus.article_from_mapping`` does), and never raise for a
bad file: an ``OSError`` is the only exception that escapes.

Every reader is bounded whatever the file holds: lines and files are read at
most ``MAX_DOCUMENT_BYTES`` at a time, JSON nested too deeply is a problem
(not a crash), and YAML front matter may hold at most
``MAX_FRONT_MATTER_VALUES`` values however its aliases expand. Files are
opened without blocking and only if they are regular files, so a named pipe
or a device in the corpus cannot hang a build.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import frontmatter
import yaml
from frontmatter.default_handlers import JSONHandler

from .encodings import (
    SAMPLE_BYTES,
    DecodeError,
    declared_html_charset,
    decode,
    decode_line,
    detect_line_encoding,
)
from .encodings import is_ascii_compatible as _ascii_compatible

# One document (a file, a JSON Lines line, a CSV row) over this is skipped:
# it is almost always a data dump or a mistake, and would hold up a build.
MAX_DOCUMENT_BYTES = 10_000_000

JSONL_SUFFIXES = frozenset({".jsonl"})
JSON_SUFFIXES = frozenset({".json"})
CSV_SUFFIXES = frozenset({".csv", ".tsv"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
# Formats with many records per file: their origins and default ids end in ":line".
MULTI_RECORD_SUFFIXES = JSONL_SUFFIXES | JSON_SUFFIXES | CSV_SUFFIXES
SUPPORTED_SUFFIXES = MULTI_RECORD_SUFFIXES | MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES

# Keys tried, in order, when a JSON object holds more than one list of records.
PREFERRED_JSON_KEYS = ("articles", "posts", "items", "records", "entries", "documents", "docs", "data", "results")

_WS_RE = re.compile(r"[ \t\n\r]*")

# YAML front matter may hold at most this many values (scalars, lists and
# mappings), counting a value reached through an alias once per use: "billion
# laughs" front matter of a few hundred bytes would otherwise expand to 10^8.
MAX_FRONT_MATTER_VALUES = 10_000
# YAML front matter (between its ``---`` lines) may be at most this long.
MAX_FRONT_MATTER_BYTES = 256 * 1024

# Rows as large as the document limit must reach the size check, not die in csv.
csv.field_size_limit(max(csv.field_size_limit(), MAX_DOCUMENT_BYTES))

_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


@dataclass(frozen=True)
class RawRecord:
    """One record's fields as read from a file, before validation; ``line`` is where it starts."""

    data: dict[str, Any]
    line: int | None = None
    # The record's rank among those starting on ``line``, from 2 (a JSON array written on one line).
    nth: int | None = None
    # Said about the record by its reader, besides what validation finds.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """A record or file that could not be read, and why.

    ``rest_of_file`` says reading stopped here, so records after ``line`` (or
    the whole file, without a line) were not seen.
    """

    reason: str
    line: int | None = None
    rest_of_file: bool = False
    nth: int | None = None


Item = RawRecord | Problem


@dataclass(frozen=True)
class FormatOptions:
    """Reader settings that come from the command line."""

    json_key: str | None = None


Reader = Callable[[Path, FormatOptions], Iterator[Item]]


def size_text(n: int) -> str:
    """A byte count for people: ``12.3 MB``."""
    return f"{n / 1e6:.1f} MB"


def too_large(n: int) -> str:
    """The reason given for a document over ``MAX_DOCUMENT_BYTES``."""
    return f"document is {size_text(n)}, over the {size_text(MAX_DOCUMENT_BYTES)} limit"


def special_file_kind(mode: int) -> str | None:
    """What a file that is not a regular file is (``a named pipe``), from its ``st_mode``; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _SPECIAL_FILES if test(mode)), "not a regular file")


class NotRegularFileError(OSError):
    """A path that was a regular file when listed is something else when opened."""


def open_regular(path: Path) -> IO[bytes]:
    """Open a regular file for reading in binary; raise ``NotRegularFileError`` for anything else.

    The file is opened without blocking (a named pipe would wait for a writer
    forever) and checked after opening, so a file swapped for a pipe or a
    device after the folder was listed is refused too.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = special_file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFileError(f"not a regular file ({kind})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file_bytes(path: Path) -> bytes:
    """The whole content of a regular file (see ``open_regular``)."""
    with open_regular(path) as f:
        return f.read()


def _decode_file(path: Path) -> str:
    return decode(read_file_bytes(path)).text


def _json_problem(exc: Exception) -> str:
    """The reason for a JSON text Python's parser refused: a syntax error, or a value it cannot hold."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply (arrays or objects inside each other more than about 900 levels)"
    # ValueError: a number of more than 4,300 digits, which Python refuses to convert.
    return f"invalid JSON: {str(exc).split(';')[0]}"


# -- JSON Lines ---------------------------------------------------------------


def _jsonl_line(text: str, lineno: int) -> Item | None:
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Problem(_json_problem(exc), lineno)
    if not isinstance(data, dict):
        return Problem(f"expected a JSON object, found {type(data).__name__}", lineno)
    return RawRecord(data, lineno)


def _bounded_lines(f: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """``(line number, bytes, size)`` of each line, holding at most ``MAX_DOCUMENT_BYTES`` of one in memory.

    A longer line is read through to its end and returned empty, with its size.
    """
    lineno = 0
    while True:
        raw = f.readline(MAX_DOCUMENT_BYTES + 1)
        if not raw:
            return
        lineno += 1
        size = len(raw)
        if size > MAX_DOCUMENT_BYTES and not raw.endswith(b"\n"):
            while True:
                rest = f.readline(1 << 20)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            raw = b""
        yield lineno, raw, size


def read_jsonl(path: Path, options: FormatOptions) -> Iterator[Item]:
    """One record per non-blank line; lines are decoded one by one, so a bad line costs only itself."""
    with open_regular(path) as f:
        head = f.read(SAMPLE_BYTES)
        try:
            codec = detect_line_encoding(head, complete=len(head) < SAMPLE_BYTES)
        except DecodeError as exc:
            yield Problem(str(exc), rest_of_file=True)
            return
        f.seek(0)
        found = False
        if _ascii_compatible(codec):
            # Stream: a JSON Lines export can be larger than memory allows.
            for lineno, raw, size in _bounded_lines(f):
                if size > MAX_DOCUMENT_BYTES:
                    found = True
                    yield Problem(too_large(size), lineno)
                    continue
                try:
                    text = decode_line(raw, codec)
                except DecodeError as exc:
                    found = True
                    yield Problem(str(exc), lineno)
                    continue
                item = _jsonl_line(text, lineno)
                if item is not None:
                    found = True
                    yield item
        else:
            try:
                # split('\n'), not splitlines(): JSON strings may hold U+2028 and other separators.
                lines = decode(f.read()).text.split("\n")
            except DecodeError as exc:
                yield Problem(str(exc), rest_of_file=True)
                return
            for lineno, text in enumerate(lines, start=1):
                item = _jsonl_line(text, lineno)
                if item is not None:
                    found = True
                    yield item
    if not found:
        yield Problem("empty file: no records")


# -- JSON ---------------------------------------------------------------------


class _LineCounter:
    """Line numbers for increasing offsets into one text, without rescanning it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _skip_ws(text: str, pos: int) -> int:
    match = _WS_RE.match(text, pos)
    return match.end() if match else pos


@dataclass(frozen=True)
class _Unreadable:
    """An array element that is JSON but that Python cannot hold (too deep, a number too long)."""

    reason: str


# A JSON string, or one of the characters that open, close or separate values.
_JSON_TOKEN_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


def _value_end(text: str, pos: int) -> int:
    """The offset just past the JSON value starting at ``pos``, found by counting brackets, not parsing.

    Linear and without recursion, so an element nested 200,000 levels deep
    costs only itself: the elements after it are still read.
    """
    depth = 0
    for match in _JSON_TOKEN_RE.finditer(text, pos):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            if depth == 0:
                return match.start()  # the end of the enclosing array: a number or literal ended here
            depth -= 1
            if depth == 0:
                return match.end()
        elif token == ",":
            if depth == 0:
                return match.start()
        elif depth == 0:
            return match.end()  # a string element
    return len(text)


def _array_items(text: str, pos: int) -> Generator[tuple[Any, int], None, int]:
    """Yield ``(value, offset)`` for each element of the JSON array starting at ``pos``; return its end.

    An element Python's parser refuses although it is JSON (nested too deeply,
    a number too long) is yielded as ``_Unreadable`` and skipped over.
    """
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return pos + 1
    while True:
        value: Any
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError) as exc:
            value, end = _Unreadable(_json_problem(exc)), _value_end(text, pos)
        yield value, pos
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif text.startswith("]", pos):
            return pos + 1
        else:
            raise json.JSONDecodeError("expected ',' or ']'", text, pos)


class _Records(list[Any]):
    """A JSON array of a wrapping object, read element by element, with each element's offset."""

    offsets: list[int]


# How deep keys may lead to the list of records (``--json-key a.b.c``); deeper values are read whole.
_MAX_WRAPPER_DEPTH = 16


def _wrapper_value(text: str, pos: int, depth: int = 0) -> tuple[Any, int]:
    """The JSON value at ``pos`` and its end, with arrays read element by element (``_Records``).

    Unlike ``json.loads`` of the whole file, an element nested too deeply or
    holding too long a number spoils only itself (``_Unreadable``), as in a
    top-level array. Of repeated keys the last counts, as in ``json.loads``.
    """
    if text.startswith("[", pos):
        records = _Records()
        records.offsets = []
        items = _array_items(text, pos)
        while True:
            try:
                value, offset = next(items)
            except StopIteration as done:
                return records, done.value  # where the array ends: no second pass over it
            records.append(value)
            records.offsets.append(offset)
    if not text.startswith("{", pos) or depth >= _MAX_WRAPPER_DEPTH:
        try:
            value, end = json.JSONDecoder().raw_decode(text, pos)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError) as exc:
            return _Unreadable(_json_problem(exc)), _value_end(text, pos)
        return value, end
    decoder = json.JSONDecoder()
    members: dict[str, Any] = {}
    pos = _skip_ws(text, pos + 1)
    while not text.startswith("}", pos):
        if not text.startswith('"', pos):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
        name, end = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, end)
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        members.pop(name, None)  # the last of repeated keys counts, in its own place
        members[name], end = _wrapper_value(text, _skip_ws(text, pos + 1), depth + 1)
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif not text.startswith("}", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    return members, pos + 1


def _plain(value: Any) -> Any:
    """``value`` from ``_wrapper_value`` as ``json.loads`` gives it (for an object that is one record)."""
    if isinstance(value, _Records):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _is_record_list(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(item, dict) for item in value)


def _choose_key(obj: Mapping[str, Any], wanted: str | None) -> tuple[list[str] | None, str | None]:
    """The key path of the record list in a JSON object, or None for "the object is one record", or a problem."""
    if wanted:
        parts = wanted.split(".")
        node: Any = obj
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return None, f"no list under the key {wanted!r} (see --json-key)"
            node = node[part]
        if not isinstance(node, list):
            return None, f"the value under {wanted!r} is a {type(node).__name__}, not a list"
        return parts, None
    lists = [k for k, v in obj.items() if _is_record_list(v)]
    if not lists:
        if any(obj.get(key) == [] for key in PREFERRED_JSON_KEYS):
            return None, "empty file: no records"
        return None, None
    if len(lists) == 1:
        return [lists[0]], None
    for key in PREFERRED_JSON_KEYS:
        if key in lists:
            return [key], None
    named = ", ".join(lists[:5]) + (f" and {len(lists) - 5:,} more" if len(lists) > 5 else "")
    return None, f"the JSON object holds several lists of records ({named}); choose one with --json-key"


def read_json(path: Path, options: FormatOptions) -> Iterator[Item]:
    """Records from a JSON array of objects, or from a list under a key of a JSON object."""
    try:
        text = _decode_file(path)
    except DecodeError as exc:
        yield Problem(str(exc), rest_of_file=True)
        return
    start = _skip_ws(text, 0)
    if start >= len(text):
        yield Problem("empty file: no records")
        return
    lines = _LineCounter(text)
    found = False
    items: Iterator[tuple[Any, int]]
    try:
        if text.startswith("[", start):
            items = _array_items(text, start)
        elif text.startswith("{", start):
            whole, end = _wrapper_value(text, start)
            if _skip_ws(text, end) < len(text):
                raise json.JSONDecodeError("Extra data", text, _skip_ws(text, end))
            parts, problem = _choose_key(whole, options.json_key)
            if problem:
                yield Problem(problem, rest_of_file=True)
                return
            if parts is None:
                # No list inside: the object is a single article.
                yield RawRecord(_plain(whole), lines.at(start))
                return
            node = whole
            for part in parts:
                node = node[part]
            items = zip(node, node.offsets, strict=True)
        else:
            json.loads(text)  # raises with the position of the problem
            yield Problem("expected a JSON array of objects, or an object holding one", rest_of_file=True)
            return
        last_line, nth = 0, 1
        for value, offset in items:
            found = True
            line = lines.at(offset)
            # Records of an array written on one line (a minified export) are told apart by their rank on it.
            nth = nth + 1 if line == last_line else 1
            last_line = line
            rank = nth if nth > 1 else None
            if isinstance(value, _Unreadable):
                yield Problem(value.reason, line, nth=rank)
            elif not isinstance(value, dict):
                yield Problem(f"expected a JSON object, found {type(value).__name__}", line, nth=rank)
            else:
                yield RawRecord(value, line, nth=rank)
    except json.JSONDecodeError as exc:
        yield Problem(
            f"invalid JSON: {exc.msg} (column {exc.colno}); the rest of the file was not read",
            exc.lineno,
            rest_of_file=True,
        )
        return
    except (ValueError, RecursionError) as exc:
        # The position of the problem is unknown: only what was read so far counts.
        yield Problem(f"{_json_problem(exc)}; the rest of the file was not read", rest_of_file=True)
        return
    if not found:
        yield Problem("empty file: no records")


# -- CSV ----------------------------------------------------------------------


def _delimiter(path: Path, header: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    # The header names the fields, so it is the one line whose separators are sure.
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """``(line where the row starts, row or the error that row is)`` for each row of a CSV text.

    A quote that is never closed would make the rest of the file one field,
    every row after it lost and uncounted: that row is reported on its first
    line, and reading goes on from the line after it.
    """
    offset = 0  # lines of ``text`` before the part being read
    for _ in range(_MAX_CSV_RESTARTS):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        last_line = 0
        while True:
            start = offset + last_line + 1
            try:
                row: list[str] | csv.Error = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    yield start, csv.Error("a quote opened in this row is never closed")
                    # Go on after the row's first line: the next reader starts there.
                    cut = -1
                    for _ in range(start - offset):
                        cut = text.find("\n", cut + 1)
                        if cut < 0:
                            return
                    text, offset = text[cut + 1 :], start
                    break
                row = exc
            last_line = reader.line_num
            yield start, row
    # Each restart reads the rest of the file again: bounded, so that no file costs quadratic time.
    yield (
        offset + 1,
        _CsvGaveUp(f"more than {_MAX_CSV_RESTARTS} quotes never closed; the rest of the file was not read"),
    )


_MAX_CSV_RESTARTS = 100


class _CsvGaveUp(csv.Error):
    """Reading a CSV file stopped before its end."""


_UNDECODED_RE = re.compile("[\udc80-\udcff]")


def _decode_lines_file(path: Path) -> str:
    """A file of one record per line (or row), decoded; bytes a mostly UTF-8 file cannot decode are kept
    as lone surrogates (U+DC80-U+DCFF), for the rows that hold them to be reported one by one."""
    data = read_file_bytes(path)
    codec = detect_line_encoding(data[:SAMPLE_BYTES], complete=len(data) <= SAMPLE_BYTES)
    if codec == "utf-8":
        return data.decode("utf-8", "surrogateescape")
    return decode(data).text


def read_csv(path: Path, options: FormatOptions) -> Iterator[Item]:
    """One record per row under a header row (``.csv``: comma, semicolon or tab; ``.tsv``: tab)."""
    try:
        text = _decode_lines_file(path)
    except DecodeError as exc:
        yield Problem(str(exc), rest_of_file=True)
        return
    first_line = text.split("\n", 1)[0]
    header: list[str] | None = None
    found = False
    # Only a file with bytes UTF-8 could not decode has rows to look through for them.
    damaged = _UNDECODED_RE.search(text) is not None
    for start, row in _csv_rows(text, _delimiter(path, first_line)):
        if isinstance(row, csv.Error):
            found = True
            yield Problem(f"invalid CSV: {row}", start, rest_of_file=isinstance(row, _CsvGaveUp))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if damaged and any(_UNDECODED_RE.search(cell) for cell in row):
            found = True
            yield Problem("not valid UTF-8 text", start)
            continue
        if header is None:
            header = [name.strip() for name in row]
            continue
        found = True
        if len(row) != len(header):
            yield Problem(f"row has {len(row)} fields but the header has {len(header)}", start)
            continue
        yield RawRecord({name: value for name, value in zip(header, row, strict=True) if name}, start)
    if header is None:
        yield Problem("empty file: no header row")
    elif not found:
        yield Problem("empty file: no records under the header")


# -- Markdown, plain text, HTML -----------------------------------------------


def nested_leaves(value: Any) -> Iterator[Any]:
    """The leaves of nested lists and tuples, in order; iterative, so no depth of nesting exhausts the stack."""
    stack: list[Iterator[Any]] = [iter([value])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list | tuple):
            stack.append(iter(item))
        else:
            yield item


def _flatten(value: Any) -> list[Any]:
    """The leaves of nested lists, strings split at commas (Hexo writes nested categories as ``[[parent, child]]``)."""
    leaves: list[Any] = []
    for item in nested_leaves(value):
        if isinstance(item, str):
            leaves.extend(item.split(","))
        elif item is not None:
            leaves.append(item)
    return leaves


_END = object()


def normalize_front_matter(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Map the common static-site front matter keys onto article fields.

    ``categories`` are merged into ``tags``; ``permalink`` stands in for a
    missing ``url``. Other keys are kept so that ``--field`` can map them.
    A tag that is not text (a mapping) is kept as it is, for the article's
    checks to refuse.
    """
    data = dict(meta)
    if "categories" in data or "category" in data:
        data["tags"] = _flatten(data.get("tags")) + _flatten(data.get("categories")) + _flatten(data.get("category"))
    if not data.get("url") and data.get("permalink"):
        data["url"] = data["permalink"]
    return data


class FrontMatterError(ValueError):
    """Front matter that cannot be read: invalid, not a mapping, or too large once its aliases are expanded."""


_YAML_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FrontMatterLoader(_YAML_BASE_LOADER):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's when installed), with numbers and booleans kept as written.

    Front matter is typed by hand: ``title: 1984`` is a title, not a number,
    and ``title: 1.10`` must not become ``1.1``. Dates stay dates.
    """


for _tag in ("int", "float", "bool"):
    _FrontMatterLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _FrontMatterLoader.construct_scalar)


def _timestamp_or_text(loader: Any, node: yaml.ScalarNode) -> Any:
    # A date-shaped value that is no date (2020-02-30, 0000-00-00, a leap second, +99:00) stays text, so
    # that the article is indexed without a date and a warning, as in the other formats, not skipped whole.
    try:
        return loader.construct_yaml_timestamp(node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _node_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_node_graph(root: yaml.Node) -> None:
    """Refuse a YAML document whose aliases make it recursive or expand it past ``MAX_FRONT_MATTER_VALUES``.

    Aliases make the composed document a graph whose nodes are shared; its
    size as a tree (what constructing and reading it costs) is counted once
    per node with the sizes of shared nodes remembered, without recursion.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _node_children(node)
        if finished:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in children)
            if size > MAX_FRONT_MATTER_VALUES:
                raise FrontMatterError(
                    f"front matter holds more than {MAX_FRONT_MATTER_VALUES:,} values once its YAML aliases "
                    "are expanded"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise FrontMatterError("a YAML alias in the front matter refers to a value that contains it")
            if id(child) not in sizes:
                stack.append((child, False))


def load_yaml_front_matter(text: str) -> Any:
    """Parse YAML front matter safely and within bounds; raise ``FrontMatterError`` (or a ``yaml.YAMLError``)."""
    # Checked before parsing: a 10 MB list of 4.9 million items took 31 s and 2 GB to compose, only to be
    # refused for its number of values.
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FRONT_MATTER_BYTES:
        raise FrontMatterError(
            f"front matter of {size:,} bytes is over the limit of {MAX_FRONT_MATTER_BYTES // 1024} KB"
        )
    loader = _FrontMatterLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node_graph(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_reason(exc: BaseException) -> str:
    if isinstance(exc, FrontMatterError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "invalid YAML front matter: nested too deeply"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"invalid YAML front matter: {first}"


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The front matter (YAML between ``---`` lines, or a JSON object) and the rest of a Markdown text.

    Raises ``FrontMatterError`` for front matter that cannot be read.
    """
    text = text.strip()
    handler = frontmatter.detect_format(text, frontmatter.handlers)
    if handler is None:
        return {}, text
    try:
        raw, content = handler.split(text)
    except ValueError:
        return {}, text
    is_json = isinstance(handler, JSONHandler)
    try:
        meta = json.loads(raw) if is_json else load_yaml_front_matter(raw)
    except Exception as exc:  # whatever the parser raises, only this file is lost
        if is_json:
            raise FrontMatterError(_json_problem(exc).replace("invalid JSON", "invalid JSON front matter")) from None
        raise FrontMatterError(_yaml_reason(exc)) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        kind = "a list" if isinstance(meta, list) else "a single value"
        raise FrontMatterError(f"invalid YAML front matter: {kind}, not a mapping of keys to values")
    return meta, content.strip()


def _heading(line: str) -> str | None:
    """The text of a level-1 ATX heading (``# Title #``), or None; linear in the line's length."""
    if not line.startswith("#") or len(line) < 2 or line[1] not in " \t":
        return None
    text = line[1:].strip().rstrip("#").rstrip()
    return text or None


def read_markdown(path: Path, options: FormatOptions) -> Iterator[Item]:
    """The article in a Markdown file with optional YAML front matter."""
    try:
        meta_raw, body = split_front_matter(_decode_file(path))
    except (DecodeError, FrontMatterError) as exc:
        yield Problem(str(exc))
        return
    meta = normalize_front_matter(meta_raw)
    if not body and not meta:
        yield Problem("empty file")
        return
    if not meta.get("title"):
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            heading = _heading(line.strip())
            if heading:
                meta["title"] = heading
                body = "\n".join(lines[i + 1 :]).strip()
            break
        if not meta.get("title"):
            meta["title"] = path.stem
    meta["body"] = body
    yield RawRecord(meta)


def read_text(path: Path, options: FormatOptions) -> Iterator[Item]:
    """The article in a plain-text file: the first non-empty line is the title."""
    try:
        lines = _decode_file(path).splitlines()
    except DecodeError as exc:
        yield Problem(str(exc))
        return
    # Not pop(0) in a loop: a million blank lines first would take quadratic time.
    first = next((i for i, text in enumerate(lines) if text.strip()), None)
    if first is None:
        yield Problem("empty file")
        return
    yield RawRecord({"title": lines[first].strip(), "body": "\n".join(lines[first + 1 :]).strip()})


def read_html(path: Path, options: FormatOptions) -> Iterator[Item]:
    """The main article of an HTML page: text without boilerplate, plus title, date, url and site name."""
    data = read_file_bytes(path)
    try:
        text = decode(data, declared=declared_html_charset(data)).text
    except DecodeError as exc:
        yield Problem(str(exc))
        return
    if not text.strip():
        yield Problem("empty file")
        return
    from .html_extract import MAX_EXTRACT_ELEMENTS, MAX_TAG_ATTRIBUTES, extract_article, page_shape, whole_text

    tags, widest = page_shape(text)
    if widest > MAX_TAG_ATTRIBUTES:
        yield Problem(f"an HTML tag has {widest:,} attributes, over the limit of {MAX_TAG_ATTRIBUTES:,}")
        return
    warnings: tuple[str, ...] = ()
    try:
        if tags > MAX_EXTRACT_ELEMENTS:
            page = whole_text(text)
            warnings = (
                f"the page has {tags:,} elements, over the {MAX_EXTRACT_ELEMENTS:,} the article extractor is given; "
                "indexed as the whole text of the page",
            )
        else:
            page = extract_article(text)
    except Exception as exc:
        # One page that trips the extractor must not stop a build of thousands.
        yield Problem(f"cannot extract the article: {type(exc).__name__}: {exc}")
        return
    if page is None:
        yield Problem("no article text found in the page")
        return
    yield RawRecord(
        {
            "title": page.title or path.stem,
            "body": page.body,
            "date": page.date,
            "url": page.url,
            "source": page.source,
            "tags": list(page.tags),
        },
        warnings=warnings,
    )


READERS: dict[str, Reader] = {
    **{s: read_jsonl for s in JSONL_SUFFIXES},
    **{s: read_json for s in JSON_SUFFIXES},
    **{s: read_csv for s in CSV_SUFFIXES},
    **{s: read_markdown for s in MARKDOWN_SUFFIXES},
    **{s: read_text for s in TEXT_SUFFIXES},
    **{s: read_html for s in HTML_SUFFIXES},
}


def reader_for(path: Path) -> Reader | None:
    """The reader for a file, chosen by its suffix, or None if the type is not supported."""
    return READERS.get(path.suffix.lower())


def count_items(path: Path) -> int:
    """A quick estimate of how many items a file yields, for progress bars (1 when unsure)."""
    suffix = path.suffix.lower()
    if suffix not in MULTI_RECORD_SUFFIXES:
        return 1
    try:
        if special_file_kind(path.stat().st_mode) is not None:
            return 1
        with open_regular(path) as f:
            if suffix in JSONL_SUFFIXES:
                return max(1, sum(1 for _, line, _ in _bounded_lines(f) if line.strip()))
            if suffix in CSV_SUFFIXES:
                # Rows may span lines; an upper bound is good enough for a progress bar.
                return max(1, sum(1 for _, line, _ in _bounded_lines(f) if line.strip()) - 1)
            # Objects in a JSON array: parsing is the only sure count, and costs
            # little next to indexing.
            value = json.loads(decode(f.read()).text)
    except Exception:  # an estimate; reading the file reports what is wrong with it
        return 1
    if isinstance(value, list):
        return max(1, len(value))
    if isinstance(value, dict):
        return max([1, *(len(v) for v in value.values() if _is_record_list(v))])
    return 1
