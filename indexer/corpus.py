"""Reading article collections: JSONL, Markdown with front matter, and plain text.

``iter_records(paths)`` walks files and folders and yields one ``Article`` per
good record, and one ``Skipped`` per record or file it could not use, each
naming the file (and line) and the reason, so a build can account for every
input record.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from .errors import CorpusError

JSONL_SUFFIXES = frozenset({".jsonl"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
SUPPORTED_SUFFIXES = JSONL_SUFFIXES | MARKDOWN_SUFFIXES | TEXT_SUFFIXES

_HEADING_RE = re.compile(r"^#\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Article:
    """One document to index. ``origin`` says where it came from (file, and line for JSONL)."""

    id: str
    title: str
    body: str
    date: datetime | None = None
    source: str = ""
    tags: tuple[str, ...] = ()
    url: str = ""
    origin: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def content_hash(self) -> str:
        """A digest of everything indexed about the article (not where it came from)."""
        parts = [self.id, self.title, self.body, self.date.isoformat() if self.date else "", self.source, self.url]
        parts.extend(self.tags)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Skipped:
    """A record or file that was not indexed, and why."""

    origin: str
    reason: str


Record = Article | Skipped


def parse_date(value: Any) -> datetime | None:
    """Turn an ISO 8601 date or datetime (string, date or datetime) into a naive datetime.

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
            raise ValueError(f"date {value!r} is not an ISO 8601 date such as 2025-06-30") from None
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


def article_from_mapping(data: Mapping[str, Any], default_id: str, origin: str) -> Record:
    """Validate one record's fields and build an ``Article``, or a ``Skipped`` saying what is wrong."""
    try:
        raw_id = data.get("id")
        article_id = str(raw_id).strip() if raw_id not in (None, "") else default_id
        title = _text_field(data, "title")
        body = _text_field(data, "body")
        source = _text_field(data, "source")
        url = _text_field(data, "url")
        tags = _parse_tags(data.get("tags"))
    except ValueError as exc:
        return Skipped(origin, str(exc))
    if not title:
        return Skipped(origin, "missing title")
    if not body:
        return Skipped(origin, "missing or empty body")
    warnings: list[str] = []
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
    )


def _read_text(path: Path) -> str:
    # utf-8-sig accepts an optional BOM, which Windows editors often add.
    with open(path, encoding="utf-8-sig") as f:
        return f.read()


def read_jsonl(path: Path, rel: str) -> Iterator[Record]:
    """Yield one record per non-blank line of a JSON Lines file."""
    with open(path, encoding="utf-8-sig", errors="strict") as f:
        lineno = 0
        while True:
            origin = f"{rel}:{lineno + 1}"
            try:
                line = f.readline()
            except UnicodeDecodeError:
                yield Skipped(origin, "not UTF-8 text; the rest of the file was not read")
                return
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Skipped(origin, f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(data, dict):
                yield Skipped(origin, f"expected a JSON object, found {type(data).__name__}")
                continue
            yield article_from_mapping(data, default_id=origin, origin=origin)


def read_markdown(path: Path, rel: str) -> Iterator[Record]:
    """Yield the article in a Markdown file with optional YAML front matter."""
    try:
        post = frontmatter.loads(_read_text(path))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        yield Skipped(rel, f"invalid YAML front matter: {first}")
        return
    meta: dict[str, Any] = dict(post.metadata)
    body = post.content.strip()
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
    yield article_from_mapping(meta, default_id=rel, origin=rel)


def read_text_file(path: Path, rel: str) -> Iterator[Record]:
    """Yield the article in a plain-text file: first non-empty line is the title."""
    lines = _read_text(path).splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        yield Skipped(rel, "empty file")
        return
    data = {"title": lines[0].strip(), "body": "\n".join(lines[1:]).strip()}
    yield article_from_mapping(data, default_id=rel, origin=rel)


_READERS = {
    **{s: read_jsonl for s in JSONL_SUFFIXES},
    **{s: read_markdown for s in MARKDOWN_SUFFIXES},
    **{s: read_text_file for s in TEXT_SUFFIXES},
}


def _walk(root: Path) -> Iterator[Path]:
    # Sorted, so ids, duplicate handling and reports are the same on every run.
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _walk(child)
        else:
            yield child


def iter_records(paths: Iterable[str | Path]) -> Iterator[Record]:
    """Yield an ``Article`` or ``Skipped`` for every record in the given files and folders.

    Ids default to the path relative to the folder given (for a single file,
    relative to its parent), plus ``:line`` for JSONL records without an id.
    Raises ``CorpusError`` if a path does not exist.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise CorpusError(f"corpus path not found: {root}")
    for root in roots:
        base = root if root.is_dir() else root.parent
        files = _walk(root) if root.is_dir() else iter([root])
        for path in files:
            rel = path.relative_to(base).as_posix()
            reader = _READERS.get(path.suffix.lower())
            if reader is None:
                yield Skipped(rel, f"unsupported file type {path.suffix or '(none)'!r}")
                continue
            if path.name.lower() == "readme.md" and root.is_dir():
                # A folder's README describes the corpus; it is not an article.
                yield Skipped(rel, "README files are not indexed")
                continue
            try:
                yield from reader(path, rel)
            except UnicodeDecodeError:
                yield Skipped(rel, "not UTF-8 text")
            except OSError as exc:
                yield Skipped(rel, f"cannot read file: {exc.strerror or exc}")


def iter_articles(paths: Iterable[str | Path]) -> Iterator[Article]:
    """Yield only the good articles from ``iter_records`` (for callers that need no report)."""
    for record in iter_records(paths):
        if isinstance(record, Article):
            yield record


def count_records(paths: Iterable[str | Path]) -> int:
    """A quick upper bound on how many records ``iter_records`` will yield (for progress bars)."""
    total = 0
    for root in (Path(p) for p in paths):
        if not root.exists():
            continue
        for path in _walk(root) if root.is_dir() else iter([root]):
            if path.suffix.lower() in JSONL_SUFFIXES:
                try:
                    with open(path, "rb") as f:
                        total += sum(1 for line in f if line.strip())
                except OSError:
                    total += 1
            else:
                total += 1
    return total
