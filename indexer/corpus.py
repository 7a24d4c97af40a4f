"""Reading article collections: files and folders of JSON Lines, JSON, CSV, Markdown, text and HTML.

``iter_records(paths)`` walks files and folders and yields one ``Article`` per
good record, and one ``Skipped`` per record or file it could not use, each
naming the file (and line) and the reason, so a build can account for every
input record. The formats themselves live in ``formats``, encodings in
``encodings``.

Every record has two names for where it came from: ``where`` (for people:
the path relative to the folder given, plus ``:line``) and ``origin`` (stored
in the index: the same with the folder's absolute path, so that ``sync`` can
tell which documents came from the folders it was given).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pathspec

from .errors import CorpusError
from .readers.formats import (
    JSON_SUFFIXES,
    JSONL_SUFFIXES,
    MARKDOWN_SUFFIXES,
    MAX_DOCUMENT_BYTES,
    MULTI_RECORD_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TEXT_SUFFIXES,
    FormatOptions,
    Problem,
    count_items,
    reader_for,
    too_large,
)

__all__ = [
    "FIELD_NAMES",
    "JSONL_SUFFIXES",
    "JSON_SUFFIXES",
    "MARKDOWN_SUFFIXES",
    "MAX_DOCUMENT_BYTES",
    "SUPPORTED_SUFFIXES",
    "TEXT_SUFFIXES",
    "Article",
    "PathFilter",
    "ReadOptions",
    "Record",
    "Skipped",
    "article_from_mapping",
    "count_records",
    "iter_articles",
    "iter_records",
    "origin_file",
    "parse_date",
]

# The article fields a record can fill (and ``--field`` can map).
FIELD_NAMES = ("id", "title", "body", "date", "source", "tags", "url")

_LOOSE_DATE_RE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_LINE_SUFFIX_RE = re.compile(r"(.*):(\d+)")


@dataclass(frozen=True)
class Article:
    """One document to index.

    ``origin`` is where it came from, as stored in the index: the absolute
    path of its file, plus ``:line`` for formats with many records per file.
    ``where`` is the same for people: relative to the folder given.
    """

    id: str
    title: str
    body: str
    date: datetime | None = None
    source: str = ""
    tags: tuple[str, ...] = ()
    url: str = ""
    origin: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    where: str = field(default="", compare=False)

    def content_hash(self) -> str:
        """A digest of everything indexed about the article (not where it came from)."""
        parts = [self.id, self.title, self.body, self.date.isoformat() if self.date else "", self.source, self.url]
        parts.extend(self.tags)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]

    @property
    def shown_origin(self) -> str:
        """Where the article came from, as shown to people."""
        return self.where or self.origin


@dataclass(frozen=True)
class Skipped:
    """A record or file that was not indexed, and why.

    ``origin`` is for people (relative path, and line). ``stored_origin`` is
    what a document from it would have as its origin in the index: the file's
    absolute path, plus ``:line`` when only that record was lost. ``sync``
    keeps the documents it covers instead of deleting them.
    """

    origin: str
    reason: str
    stored_origin: str = field(default="", compare=False)


Record = Article | Skipped


@dataclass(frozen=True)
class ReadOptions:
    """How to read a corpus: field mapping, file filters, and where a JSON object keeps its records."""

    # Article field -> the key that holds it in the records (``--field title=headline``).
    fields: Mapping[str, str] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    json_key: str | None = None

    def format_options(self) -> FormatOptions:
        """The part of the options the file readers need."""
        return FormatOptions(json_key=self.json_key)


class PathFilter:
    """``--include`` and ``--exclude`` glob patterns (gitignore syntax) on paths relative to a folder given."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        include, exclude = list(include), list(exclude)
        self._include = pathspec.GitIgnoreSpec.from_lines(include) if include else None
        self._exclude = pathspec.GitIgnoreSpec.from_lines(exclude) if exclude else None

    def allows(self, rel: str) -> bool:
        """True if a file at ``rel`` (POSIX, relative to its folder) is to be read."""
        if self._include is not None and not self._include.match_file(rel):
            return False
        return not (self._exclude is not None and self._exclude.match_file(rel))


def parse_date(value: Any) -> datetime | None:
    """Turn an ISO 8601 date or datetime (string, date or datetime) into a naive datetime.

    ``2025/06/30``, ``2025-6-30 08:00`` and ``2025年6月30日`` are accepted too.
    Raises ``ValueError`` with a readable message when the value is not a date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            loose = _LOOSE_DATE_RE.fullmatch(text)
            if loose is None:
                raise ValueError(f"date {value!r} is not an ISO 8601 date such as 2025-06-30") from None
            try:
                y, mo, d, h, mi, sec = (int(g) if g else 0 for g in loose.groups())
                parsed = datetime(y, mo, d, h, mi, sec)
            except ValueError:
                raise ValueError(f"date {value!r} is not a valid date") from None
        # Dates are compared as written; a time zone offset is dropped, not converted.
        return parsed.replace(tzinfo=None)
    raise ValueError(f"date {value!r} is not an ISO 8601 date such as 2025-06-30")


def _parse_tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ValueError(f"tags must be a list or a comma-separated string, not {type(value).__name__}")
    tags = []
    for item in items:
        tag = str(item).strip().replace(",", " ")
        if tag and tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _text_field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value).strip()
    raise ValueError(f"field {name!r} must be text, not {type(value).__name__}")


_MISSING = object()


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    if key in data:
        return data[key]
    # A dotted key reaches into nested objects: --field source=meta.site
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _apply_fields(data: Mapping[str, Any], fields: Mapping[str, str]) -> Mapping[str, Any]:
    if not fields:
        return data
    mapped = dict(data)
    for name, key in fields.items():
        value = _lookup(data, key)
        # A record without the mapped key keeps its own field of that name, so
        # one mapping can serve a folder of mixed formats.
        if value is not _MISSING:
            mapped[name] = value
    return mapped


def article_from_mapping(
    data: Mapping[str, Any],
    default_id: str,
    origin: str,
    *,
    fields: Mapping[str, str] | None = None,
    where: str | None = None,
) -> Record:
    """Validate one record's fields and build an ``Article``, or a ``Skipped`` saying what is wrong.

    ``fields`` maps article fields to the record's own keys; ``where`` is the
    origin shown to people (``origin`` itself when not given).
    """
    shown = where if where is not None else origin
    fields = fields or {}
    data = _apply_fields(data, fields)

    def hint(name: str) -> str:
        return f" (--field {name}={fields[name]})" if name in fields else ""

    try:
        raw_id = data.get("id")
        article_id = str(raw_id).strip() if raw_id not in (None, "") else default_id
        title = _text_field(data, "title")
        body = _text_field(data, "body")
        source = _text_field(data, "source")
        url = _text_field(data, "url")
        tags = _parse_tags(data.get("tags"))
    except ValueError as exc:
        return Skipped(shown, str(exc), origin)
    if not body:
        return Skipped(shown, "missing or empty body" + hint("body"), origin)
    warnings: list[str] = []
    if not title:
        # The body is worth finding: title the article with its opening words,
        # like a .txt file, and say so rather than drop it.
        title = _title_from_body(body)
        warnings.append("missing title" + hint("title") + f"; titled by its first words: {title}")
    # Characters are at most 4 bytes, so only long bodies need encoding to be measured.
    if 4 * (len(body) + len(title)) > MAX_DOCUMENT_BYTES:
        size = len(body.encode("utf-8")) + len(title.encode("utf-8"))
        if size > MAX_DOCUMENT_BYTES:
            return Skipped(shown, too_large(size), origin)
    try:
        when = parse_date(data.get("date"))
    except ValueError as exc:
        # The article is still worth indexing; only its date is dropped.
        when = None
        warnings.append(f"{exc}; indexed without a date")
    return Article(
        id=article_id,
        title=title,
        body=body,
        date=when,
        source=source,
        tags=tags,
        url=url,
        origin=origin,
        warnings=tuple(warnings),
        where=shown,
    )


TITLE_FROM_BODY_CHARS = 40


def _title_from_body(body: str) -> str:
    first = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return first if len(first) <= TITLE_FROM_BODY_CHARS else first[:TITLE_FROM_BODY_CHARS] + "…"


def origin_file(origin: str) -> str:
    """The file part of a stored origin: ``/data/news.jsonl:12`` -> ``/data/news.jsonl``."""
    match = _LINE_SUFFIX_RE.fullmatch(origin)
    # Only multi-record formats carry a line, so "a:3.md" stays a file name.
    if match and Path(match.group(1)).suffix.lower() in MULTI_RECORD_SUFFIXES:
        return match.group(1)
    return origin


@dataclass(frozen=True)
class _File:
    path: Path
    rel: str  # relative to the folder given (or a single file's folder): for ids and reports
    origin: str  # absolute: stored in the index
    in_folder: bool


def _walk(root: Path, seen: set[Path]) -> Iterator[Path]:
    # Sorted, so ids, duplicate handling and reports are the same on every run.
    real = root.resolve()
    if real in seen:
        return  # a symlink back into a folder already read
    seen.add(real)
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _walk(child, seen)
        else:
            yield child


def _check_paths(paths: Iterable[str | Path]) -> list[Path]:
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise CorpusError(f"corpus path not found: {root}")
    return roots


def _iter_files(roots: list[Path], options: ReadOptions, excluded: list[str] | None) -> Iterator[_File]:
    path_filter = PathFilter(options.include, options.exclude)
    for root in roots:
        if not root.is_dir():
            # A file named on the command line is read whatever the filters say.
            yield _File(root, root.name, str(root.parent.resolve() / root.name), in_folder=False)
            continue
        base = root.resolve()
        for path in _walk(root, set()):
            rel = path.relative_to(root).as_posix()
            if not path_filter.allows(rel):
                if excluded is not None:
                    excluded.append(rel)
                continue
            yield _File(path, rel, str(base / rel), in_folder=True)


def _read_file(file: _File, options: ReadOptions) -> Iterator[Record]:
    rel, path = file.rel, file.path
    reader = reader_for(path)
    if reader is None:
        yield Skipped(rel, f"unsupported file type {path.suffix or '(none)'!r}", file.origin)
        return
    if file.in_folder and path.name.lower() == "readme.md":
        # A folder's README describes the corpus; it is not an article.
        yield Skipped(rel, "README files are not indexed", file.origin)
        return
    multi = path.suffix.lower() in MULTI_RECORD_SUFFIXES
    try:
        size = path.stat().st_size
        if not multi and size > MAX_DOCUMENT_BYTES:
            yield Skipped(rel, too_large(size), file.origin)
            return
        for item in reader(path, options.format_options()):
            line = f":{item.line}" if item.line is not None else ""
            if isinstance(item, Problem):
                # Reading stopped: the problem covers every record the file still held.
                stored = file.origin if item.rest_of_file else file.origin + line
                yield Skipped(rel + line, item.reason, stored)
                continue
            shown = rel + line
            yield article_from_mapping(
                item.data,
                default_id=shown,
                origin=file.origin + (line if multi else ""),
                fields=options.fields,
                where=shown,
            )
    except OSError as exc:
        yield Skipped(rel, f"cannot read file: {exc.strerror or exc}", file.origin)


def iter_records(
    paths: Iterable[str | Path],
    options: ReadOptions | None = None,
    *,
    excluded: list[str] | None = None,
) -> Iterator[Record]:
    """Yield an ``Article`` or ``Skipped`` for every record in the given files and folders.

    Ids default to the path relative to the folder given (for a single file,
    relative to its parent), plus ``:line`` for JSON Lines, JSON and CSV
    records without an id. Files left out by ``options.include``/``exclude``
    are appended to ``excluded`` (relative paths). Raises ``CorpusError`` if a
    path does not exist.
    """
    opts = options or ReadOptions()
    # Checked now, not on the first next(): a missing path must fail before an index is touched.
    roots = _check_paths(paths)
    return _records(roots, opts, excluded)


def _records(roots: list[Path], options: ReadOptions, excluded: list[str] | None) -> Iterator[Record]:
    for file in _iter_files(roots, options, excluded):
        yield from _read_file(file, options)


def iter_articles(paths: Iterable[str | Path], options: ReadOptions | None = None) -> Iterator[Article]:
    """Yield only the good articles from ``iter_records`` (for callers that need no report)."""
    for record in iter_records(paths, options):
        if isinstance(record, Article):
            yield record


def count_records(paths: Iterable[str | Path], options: ReadOptions | None = None) -> int:
    """A quick estimate of how many records ``iter_records`` will yield (for progress bars)."""
    opts = options or ReadOptions()
    roots = [Path(p) for p in paths if Path(p).exists()]
    return sum(count_items(file.path) for file in _iter_files(roots, opts, None))
