"""File formats: turn one corpus file into raw records (field mappings), each with its line.

A reader takes a path and yields ``RawRecord`` for every record it could
parse and ``Problem`` for everything it could not, so the caller can account
for every record. Readers decode the bytes themselves (``encodings``), never
validate fields (``corpus.article_from_mapping`` does), and never raise for a
bad file: an ``OSError`` is the only exception that escapes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from .encodings import SAMPLE_BYTES, DecodeError, declared_html_charset, decode, decode_line, detect_encoding
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

_HEADING_RE = re.compile(r"^#\s+(.+?)\s*#*\s*$")
_WS_RE = re.compile(r"[ \t\n\r]*")

# Rows as large as the document limit must reach the size check, not die in csv.
csv.field_size_limit(max(csv.field_size_limit(), MAX_DOCUMENT_BYTES))


@dataclass(frozen=True)
class RawRecord:
    """One record's fields as read from a file, before validation; ``line`` is where it starts."""

    data: dict[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class Problem:
    """A record or file that could not be read, and why.

    ``rest_of_file`` says reading stopped here, so records after ``line`` (or
    the whole file, without a line) were not seen.
    """

    reason: str
    line: int | None = None
    rest_of_file: bool = False


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


def _decode_file(path: Path) -> str:
    return decode(path.read_bytes()).text


# -- JSON Lines ---------------------------------------------------------------


def _jsonl_line(text: str, lineno: int) -> Item | None:
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(f"invalid JSON: {exc.msg} (column {exc.colno})", lineno)
    if not isinstance(data, dict):
        return Problem(f"expected a JSON object, found {type(data).__name__}", lineno)
    return RawRecord(data, lineno)


def read_jsonl(path: Path, options: FormatOptions) -> Iterator[Item]:
    """One record per non-blank line; lines are decoded one by one, so a bad line costs only itself."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
        try:
            codec = detect_encoding(head, complete=len(head) < SAMPLE_BYTES)
        except DecodeError as exc:
            yield Problem(str(exc), rest_of_file=True)
            return
        f.seek(0)
        found = False
        if _ascii_compatible(codec):
            # Stream: a JSON Lines export can be larger than memory allows.
            for lineno, raw in enumerate(f, start=1):
                if len(raw) > MAX_DOCUMENT_BYTES:
                    found = True
                    yield Problem(too_large(len(raw)), lineno)
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


def _array_items(text: str, pos: int) -> Iterator[tuple[Any, int]]:
    """Yield ``(value, offset)`` for each element of the JSON array starting at ``pos``."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        value, end = decoder.raw_decode(text, pos)
        yield value, pos
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif text.startswith("]", pos):
            return
        else:
            raise json.JSONDecodeError("expected ',' or ']'", text, pos)


def _member_offset(text: str, pos: int, key: str) -> int | None:
    """Offset of the value of ``key`` in the (valid) JSON object starting at ``pos``."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, pos + 1)
    while text.startswith('"', pos):
        name, end = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, _skip_ws(text, end) + 1)  # past the ':'
        if name == key:
            return pos
        _, end = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, end)
        pos = _skip_ws(text, pos + 1) if text.startswith(",", pos) else pos
    return None


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
    return None, f"the JSON object holds several lists of records ({', '.join(lists)}); choose one with --json-key"


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
    try:
        if text.startswith("[", start):
            items = _array_items(text, start)
        elif text.startswith("{", start):
            whole = json.loads(text)
            parts, problem = _choose_key(whole, options.json_key)
            if problem:
                yield Problem(problem, rest_of_file=True)
                return
            if parts is None:
                # No list inside: the object is a single article.
                yield RawRecord(whole, lines.at(start))
                return
            pos: int | None = start
            for part in parts:
                assert pos is not None
                pos = _member_offset(text, pos, part)
            assert pos is not None
            items = _array_items(text, pos)
        else:
            json.loads(text)  # raises with the position of the problem
            yield Problem("expected a JSON array of objects, or an object holding one", rest_of_file=True)
            return
        for value, offset in items:
            found = True
            line = lines.at(offset)
            if not isinstance(value, dict):
                yield Problem(f"expected a JSON object, found {type(value).__name__}", line)
            else:
                yield RawRecord(value, line)
    except json.JSONDecodeError as exc:
        yield Problem(
            f"invalid JSON: {exc.msg} (column {exc.colno}); the rest of the file was not read",
            exc.lineno,
            rest_of_file=True,
        )
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


def read_csv(path: Path, options: FormatOptions) -> Iterator[Item]:
    """One record per row under a header row (``.csv``: comma, semicolon or tab; ``.tsv``: tab)."""
    try:
        text = _decode_file(path)
    except DecodeError as exc:
        yield Problem(str(exc), rest_of_file=True)
        return
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(path, first_line), strict=True)
    header: list[str] | None = None
    found = False
    last_line = 0
    while True:
        start = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            last_line = reader.line_num
            found = True
            yield Problem(f"invalid CSV: {exc}", start)
            continue
        last_line = reader.line_num
        if not any(cell.strip() for cell in row):
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


def _flatten(value: Any) -> list[Any]:
    # Hexo writes nested categories as [[parent, child]].
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _flatten(item)]
    if isinstance(value, str):
        return value.split(",")
    return [] if value is None else [value]


def normalize_front_matter(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Map the common static-site front matter keys onto article fields.

    ``categories`` are merged into ``tags``; ``permalink`` stands in for a
    missing ``url``. Other keys are kept so that ``--field`` can map them.
    """
    data = dict(meta)
    if "categories" in data or "category" in data:
        merged = _flatten(data.get("tags")) + _flatten(data.get("categories")) + _flatten(data.get("category"))
        data["tags"] = [str(t) for t in merged]
    if not data.get("url") and data.get("permalink"):
        data["url"] = data["permalink"]
    return data


def read_markdown(path: Path, options: FormatOptions) -> Iterator[Item]:
    """The article in a Markdown file with optional YAML front matter."""
    try:
        post = frontmatter.loads(_decode_file(path))
    except DecodeError as exc:
        yield Problem(str(exc))
        return
    except (yaml.YAMLError, ValueError) as exc:
        # PyYAML raises ValueError for impossible dates such as 2024-13-45.
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        yield Problem(f"invalid YAML front matter: {first}")
        return
    if not isinstance(post.metadata, dict):
        yield Problem("invalid YAML front matter: not a mapping of keys to values")
        return
    meta = normalize_front_matter(post.metadata)
    body = post.content.strip()
    if not body and not meta:
        yield Problem("empty file")
        return
    if not meta.get("title"):
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            heading = _HEADING_RE.match(line)
            if heading:
                meta["title"] = heading.group(1)
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
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        yield Problem("empty file")
        return
    yield RawRecord({"title": lines[0].strip(), "body": "\n".join(lines[1:]).strip()})


def read_html(path: Path, options: FormatOptions) -> Iterator[Item]:
    """The main article of an HTML page: text without boilerplate, plus title, date, url and site name."""
    data = path.read_bytes()
    try:
        text = decode(data, declared=declared_html_charset(data)).text
    except DecodeError as exc:
        yield Problem(str(exc))
        return
    if not text.strip():
        yield Problem("empty file")
        return
    from .html_extract import extract_article

    try:
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
        }
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
    """A quick estimate of how many items a file yields, for progress bars."""
    suffix = path.suffix.lower()
    if suffix not in MULTI_RECORD_SUFFIXES:
        return 1
    try:
        with open(path, "rb") as f:
            if suffix in JSONL_SUFFIXES:
                return max(1, sum(1 for line in f if line.strip()))
            if suffix in CSV_SUFFIXES:
                # Rows may span lines; an upper bound is good enough for a progress bar.
                return max(1, sum(1 for line in f if line.strip()) - 1)
            # Objects in a JSON array: parsing is the only sure count, and costs
            # little next to indexing.
            value = json.loads(decode(f.read()).text)
    except (OSError, ValueError):
        return 1
    if isinstance(value, list):
        return max(1, len(value))
    if isinstance(value, dict):
        return max([1, *(len(v) for v in value.values() if _is_record_list(v))])
    return 1
