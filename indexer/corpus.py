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

Nothing a file holds can stop the reading: every field is checked and bounded
(``MAX_TAGS``, ``MAX_TAG_CHARS``, ``MAX_ID_CHARS``, ``MAX_SOURCE_CHARS``,
``MAX_URL_CHARS``), text holding a NUL or a lone surrogate is refused, files
that are not regular files (pipes, sockets, devices) are never opened, and any
exception while reading one record or file skips that record or file with the
reason; the walk goes on.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timezone
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
    NotRegularFileError,
    Problem,
    count_items,
    nested_leaves,
    reader_for,
    special_file_kind,
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
    "utc_instant",
    "printable",
]

# The article fields a record can fill (and ``--field`` can map).
FIELD_NAMES = ("id", "title", "body", "date", "source", "tags", "url")
_MISSING = object()

# Bounds on the fields besides title and body (which MAX_DOCUMENT_BYTES bounds).
# A record over any of them is skipped with the reason, like a document over the
# size limit: none is met by a real article, and each keeps one record from
# costing a build minutes (100,000 tags took 65 s) or bloating the index.
MAX_TAGS = 100  # distinct tags per article, after merging categories
MAX_TAG_CHARS = 100
MAX_ID_CHARS = 1_000
MAX_SOURCE_CHARS = 1_000
MAX_URL_CHARS = 8_192
# A longer date is not a date: dropped with a warning (like any unreadable date), never parsed.
MAX_DATE_CHARS = 100

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
    absolute path, plus ``:line`` when only that record was lost, or a
    folder's absolute path ending in a separator when a whole folder could not
    be read. ``sync`` keeps the documents it covers instead of deleting them.
    """

    origin: str
    reason: str
    stored_origin: str = field(default="", compare=False)
    # The id the record would have had, when the record says it (an ``id``
    # field that could be read): ``sync`` then keeps exactly that document.
    # Empty when unknown (a line that is not JSON, a whole file): ``sync``
    # keeps every document of the file that no record produced this time.
    doc_id: str = field(default="", compare=False)


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

    def excludes_folder(self, rel: str) -> bool:
        """True if ``--exclude`` leaves out the folder at ``rel`` and so everything in it."""
        return self._exclude is not None and (
            self._exclude.match_file(rel + "/") or self._exclude.match_file(rel + "/_")
        )


def parse_date(value: Any) -> datetime | None:
    """Turn an ISO 8601 date or datetime (string, date or datetime) into a datetime, keeping its UTC offset.

    A written offset (``+08:00``, ``-06:00``, ``Z``) is kept as written: the
    result is aware, shown with that offset and sorted by its instant. Without
    one it is naive. ``2025/06/30``, ``2025-6-30 08:00`` and ``2025年6月30日``
    are accepted too. Raises ``ValueError`` with a readable message when the
    value is not a date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _fixed_offset(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_DATE_CHARS:
            raise ValueError(f"date of {len(text):,} characters is not a date")
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            loose = _LOOSE_DATE_RE.fullmatch(text)
            if loose is None:
                raise ValueError(f"date {value!r} is not an ISO 8601 date such as 2025-06-30") from None
            try:
                y, mo, d, h, mi, sec = (int(g) if g else 0 for g in loose.groups())
                parsed = datetime(y, mo, d, h, mi, sec)
            except (ValueError, OverflowError):
                raise ValueError(f"date {value!r} is not a valid date") from None
        return _fixed_offset(parsed)
    raise ValueError(f"date of type {type(value).__name__} is not an ISO 8601 date such as 2025-06-30")


def utc_instant(value: datetime) -> datetime:
    """The instant of an article's date as a naive UTC datetime; a date without an offset is taken as UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _fixed_offset(value: datetime) -> datetime:
    """``value`` with its zone as a fixed offset, so that it pickles and prints the same everywhere."""
    if value.tzinfo is None:
        return value
    offset = value.utcoffset()
    if offset is None:
        return value.replace(tzinfo=None)
    try:
        # Moving an instant near the calendar's ends into UTC can overflow (0001-01-01T00:00+08:00).
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"date {value.isoformat()!r} is outside the calendar in UTC") from None
    # A zoneinfo zone (from YAML or a caller) becomes the offset it had on that day.
    return value.replace(tzinfo=timezone(offset))


def printable(text: str) -> str:
    """``text`` safe to print on one line: control characters, and bytes of file names that are not UTF-8, escaped."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")  # a byte of a file name that is not UTF-8
        else:
            out.append(repr(ch)[1:-1] if ch != "'" else ch)
    return "".join(out)


def _check_text(name: str, text: str) -> str:
    """Refuse text no index can hold: a NUL character, or a lone surrogate (``"\\ud800"`` in JSON)."""
    if "\x00" in text:
        raise ValueError(f"field {name!r} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"field {name!r} holds a lone surrogate {text[exc.start]!r}, which is not a character"
        ) from None
    return text


def _over(name: str, size: int, limit: int, unit: str = "characters") -> ValueError:
    return ValueError(f"field {name!r} is {size:,} {unit}, over the limit of {limit:,}")


def _parse_tags(value: Any) -> tuple[str, ...]:
    """Tags from a list (nested lists flattened) or a comma-separated string; linear in their number."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(nested_leaves(value))
    else:
        raise ValueError(f"tags must be a list or a comma-separated string, not {type(value).__name__}")
    # A dict keeps insertion order and finds duplicates in constant time.
    tags: dict[str, None] = {}
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float | date):
            raise ValueError(f"a tag must be text, not {type(item).__name__}")
        tag = str(item).strip().replace(",", " ")
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise ValueError(f"a tag is {len(tag):,} characters, over the limit of {MAX_TAG_CHARS:,}")
        tags[tag] = None
        if len(tags) > MAX_TAGS:
            raise ValueError(f"more than {MAX_TAGS:,} tags (the limit)")
    return tuple(_check_text("tags", tag) for tag in tags)


def _text_field(data: Mapping[str, Any], name: str, limit: int | None = None) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"field {name!r} must be text, not {type(value).__name__}")
    # A number where text belongs (a title of 1984) is kept as written, not lost.
    text = str(value).strip()
    if limit is not None and len(text) > limit:
        raise _over(name, len(text), limit)
    return _check_text(name, text)


def _record_id(data: Mapping[str, Any], default_id: str) -> str:
    raw = data.get("id")
    if raw is None or raw == "":
        return default_id
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"field 'id' must be text or a whole number, not {type(raw).__name__}")
    if isinstance(raw, int) and raw.bit_length() > 64:
        raise ValueError("field 'id' is a number of more than 64 bits")
    article_id = str(raw).strip()
    if not article_id:
        return default_id
    if len(article_id) > MAX_ID_CHARS:
        raise _over("id", len(article_id), MAX_ID_CHARS)
    if any(ch < " " or ch == "\x7f" for ch in article_id):
        raise ValueError("field 'id' holds a control character (a tab, a line break, ...)")
    return _check_text("id", article_id)


def _known_id(data: Mapping[str, Any]) -> str:
    """The id a record names for itself, if it can be read; else ''."""
    try:
        return _record_id(data, "")
    except ValueError:
        return ""


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
        article_id = _record_id(data, default_id)
        title = _text_field(data, "title")
        body = _text_field(data, "body")
        source = _text_field(data, "source", MAX_SOURCE_CHARS)
        url = _text_field(data, "url", MAX_URL_CHARS)
        tags = _parse_tags(data.get("tags"))
    except ValueError as exc:
        return Skipped(shown, str(exc), origin, doc_id=_known_id(data))
    if not body:
        return Skipped(shown, "missing or empty body" + hint("body"), origin, doc_id=_known_id(data))
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
            return Skipped(shown, too_large(size), origin, doc_id=_known_id(data))
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


def _walk(root: Path) -> Iterator[tuple[Path, str | None]]:
    """``(path, None)`` for every file under ``root``, and ``(folder, reason)`` for a folder not read.

    Sorted, so ids, duplicate handling and reports are the same on every run.
    Iterative (a stack of folder listings), so no depth of folders exhausts
    the stack; a link back into a folder already read is reported once, not
    followed.
    """
    seen: set[Path] = set()

    def listing(folder: Path) -> tuple[Iterator[Path] | None, str | None]:
        try:
            real = folder.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            return None, f"cannot read folder: {_os_reason(exc)}"
        if real in seen:
            return None, "a link to a folder that is already being read (a loop, or a second link)"
        seen.add(real)
        try:
            return iter(sorted(folder.iterdir())), None
        except OSError as exc:
            return None, f"cannot read folder: {_os_reason(exc)}"

    first, problem = listing(root)
    if first is None:
        yield root, problem
        return
    stack = [first]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        if child.name.startswith("."):
            continue
        if child.is_dir():
            children, problem = listing(child)
            if children is None:
                yield child, problem
            else:
                stack.append(children)
        else:
            yield child, None


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _check_paths(paths: Iterable[str | Path]) -> list[Path]:
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise CorpusError(f"corpus path not found: {root}")
    return roots


def _iter_files(roots: list[Path], options: ReadOptions, excluded: list[str] | None) -> Iterator[_File | Skipped]:
    path_filter = PathFilter(options.include, options.exclude)
    for root in roots:
        if not root.is_dir():
            # A file named on the command line is read whatever the filters say.
            yield _File(root, root.name, str(root.parent.resolve() / root.name), in_folder=False)
            continue
        base = root.resolve()
        for path, problem in _walk(root):
            rel = path.relative_to(root).as_posix()
            if problem is not None:
                if not path_filter.excludes_folder(rel):
                    # Documents from a folder that could not be read are kept by sync, like those of a file.
                    yield Skipped(printable(rel + "/"), problem, str(base / rel) + os.sep)
                continue
            if not path_filter.allows(rel):
                if excluded is not None:
                    excluded.append(rel)
                continue
            yield _File(path, rel, str(base / rel), in_folder=True)


def _bad_name(rel: str) -> bool:
    # Bytes that are not UTF-8 come back as lone surrogates; no index can store
    # them, and control characters would break reports and --dry-run's lines.
    return any(ch < " " or ch == "\x7f" or "\ud800" <= ch <= "\udfff" for ch in rel)


def _describe(exc: BaseException) -> str:
    text = printable(str(exc))
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _not_readable(path: Path) -> str | None:
    """Why ``path`` is no file to read (a pipe, a symlink loop), or None; says more than its missing suffix."""
    try:
        kind = special_file_kind(path.stat().st_mode)
    except OSError as exc:
        return f"cannot read: {_os_reason(exc)}"
    return f"not a regular file ({kind})" if kind else None


def _read_file(file: _File, options: ReadOptions) -> Iterator[Record]:
    rel, path = file.rel, file.path
    if _bad_name(rel):
        yield Skipped(
            printable(rel), "the file name holds control characters or bytes that are not UTF-8; rename it", file.origin
        )
        return
    reader = reader_for(path)
    if reader is None:
        yield Skipped(rel, _not_readable(path) or f"unsupported file type {path.suffix or '(none)'!r}", file.origin)
        return
    if file.in_folder and path.name.lower() == "readme.md":
        # A folder's README describes the corpus; it is not an article.
        yield Skipped(rel, "README files are not indexed", file.origin)
        return
    multi = path.suffix.lower() in MULTI_RECORD_SUFFIXES
    try:
        # stat() follows links, so a link to a pipe or a device is refused too,
        # before anything opens it (opening a pipe waits for a writer forever).
        st = path.stat()
        kind = special_file_kind(st.st_mode)
        if kind is not None:
            yield Skipped(rel, f"not a regular file ({kind})", file.origin)
            return
        if not multi and st.st_size > MAX_DOCUMENT_BYTES:
            yield Skipped(rel, too_large(st.st_size), file.origin)
            return
    except OSError as exc:
        yield Skipped(rel, f"cannot read file: {_os_reason(exc)}", file.origin)
        return
    items = reader(path, options.format_options())
    last = ""
    while True:
        try:
            item = next(items, None)
        except NotRegularFileError as exc:
            yield Skipped(rel, str(exc), file.origin)
            return
        except OSError as exc:
            yield Skipped(rel + last, f"cannot read file: {_os_reason(exc)}", file.origin)
            return
        except Exception as exc:
            # A reader that fails on what a file holds loses the rest of that file, never the build.
            yield Skipped(rel + last, f"cannot read the rest of the file: {_describe(exc)}", file.origin)
            return
        if item is None:
            return
        line = f":{item.line}" if item.line is not None else ""
        if item.nth is not None:
            line += f"#{item.nth}"  # the second, third… record starting on that line
        last = line
        if isinstance(item, Problem):
            # Reading stopped: the problem covers every record the file still held.
            stored = file.origin if item.rest_of_file else file.origin + line
            yield Skipped(rel + line, item.reason, stored)
            continue
        shown = rel + line
        origin = file.origin + (line if multi else "")
        try:
            record = article_from_mapping(
                item.data, default_id=shown, origin=origin, fields=options.fields, where=shown
            )
        except Exception as exc:
            record = Skipped(shown, f"cannot read the record: {_describe(exc)}", origin)
        if item.warnings and isinstance(record, Article):
            record = replace(record, warnings=item.warnings + record.warnings)
        yield record


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
        if isinstance(file, Skipped):
            yield file
        else:
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
    return sum(count_items(file.path) for file in _iter_files(roots, opts, None) if isinstance(file, _File))
