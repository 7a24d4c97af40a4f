"""The ``zhsearch`` command: build, update, inspect and search an index, and serve it.

Results go to stdout; progress, counts and summaries go to stderr, so
``zhsearch search ... --json | jq`` works.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .backends import store_settings
from .build import BuildStats, StrictError, add_documents, build_index, delete_documents
from .corpus import FIELD_NAMES, PathFilter, ReadOptions, Record, count_records, printable
from .errors import IndexerError
from .search import PAGE_SIZE_CAP, Searcher
from .store import StoreSettings
from .sync import SyncStats, sync_index

DEFAULT_INDEX_DIR = "instance/index"
INDEX_ENV = "ZHSEARCH_INDEX_DIR"
MAX_LISTED_PROBLEMS = 20

F = TypeVar("F", bound=Callable[..., Any])
_MARK_RE = re.compile(r"<mark>(.*?)</mark>", re.S)


def index_option(f: F) -> F:
    """The ``--index DIR`` option every command takes (ZHSEARCH_INDEX_DIR sets its default)."""
    return click.option(
        "--index",
        "index_dir",
        envvar=INDEX_ENV,
        default=DEFAULT_INDEX_DIR,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=f"Index directory (or set {INDEX_ENV}).",
    )(f)


def _index(index_dir: Path) -> StoreSettings:
    # The backend (ZHSEARCH_BACKEND) and its settings come from the environment;
    # --index is the directory of a local index.
    return store_settings(index_dir, environ=os.environ)


def quiet_option(f: F) -> F:
    """``-q/--quiet``: no progress bar or summary on stderr."""
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")(f)


def _parse_fields(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for value in values:
        name, sep, key = value.partition("=")
        name, key = name.strip(), key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not FIELD=KEY, e.g. title=headline")
        if name not in FIELD_NAMES:
            raise click.BadParameter(f"{name!r} is not an article field; choose one of: {', '.join(FIELD_NAMES)}")
        fields[name] = key
    return fields


def corpus_options(f: F) -> F:
    """The options of every command that reads a corpus: field mapping, file filters, --json-key, --strict."""
    options = [
        click.option(
            "--field",
            "fields",
            multiple=True,
            metavar="FIELD=KEY",
            callback=_parse_fields,
            help="Read an article field from another key or CSV column, e.g. --field title=headline. Repeatable.",
        ),
        click.option(
            "--include",
            multiple=True,
            metavar="GLOB",
            callback=_check_globs,
            help="Read only files matching GLOB (gitignore syntax, relative to each folder), e.g. '*.md'. Repeatable.",
        ),
        click.option(
            "--exclude",
            multiple=True,
            metavar="GLOB",
            callback=_check_globs,
            help="Leave out files matching GLOB, e.g. 'drafts/**'. Repeatable.",
        ),
        click.option(
            "--json-key", metavar="KEY", help="Read .json records from the list under KEY (a.b for nested objects)."
        ),
        click.option("--strict", is_flag=True, help="If any record is skipped, write nothing and exit with status 1."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _check_globs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a pattern that is not a glob (``[z-a]``) as a usage error, not a traceback mid-build."""
    for pattern in value:
        try:
            PathFilter(include=[pattern])
        except Exception as exc:  # noqa: BLE001 - pathspec raises re.error or its own pattern errors
            raise click.BadParameter(f"{pattern!r} is not a valid glob pattern: {exc}") from None
    return value


def _read_options(
    fields: dict[str, str], include: tuple[str, ...], exclude: tuple[str, ...], json_key: str | None
) -> ReadOptions:
    return ReadOptions(fields=fields, include=include, exclude=exclude, json_key=json_key or None)


@contextmanager
def _errors() -> Iterator[None]:
    # Library errors become one-line messages and exit status 1, never a traceback.
    try:
        yield
    except IndexerError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        # A file system failure the library did not turn into its own error still gets one line.
        where = f" ({printable(str(exc.filename))})" if exc.filename else ""
        raise click.ClickException(f"{exc.strerror or exc}{where}") from None


@contextmanager
def _progress(
    paths: tuple[str, ...], options: ReadOptions, quiet: bool, label: str
) -> Iterator[Callable[[Record | None], None] | None]:
    """A progress bar over the records read, with rate and ETA; then a timer while the index is written."""
    if quiet:
        yield None
        return
    started = time.monotonic()
    done = 0

    def rate(item: object) -> str | None:
        elapsed = time.monotonic() - started
        return f"{done / elapsed:,.0f} records/s" if item is not None and elapsed >= 1 else None

    bar: Any = click.progressbar(
        length=max(1, count_records(paths, options)),
        label=label,
        file=sys.stderr,
        show_pos=True,
        show_eta=True,
        item_show_func=rate,
    )
    writing = _WritingTimer(label)
    open_bar = True

    def close_bar() -> None:
        nonlocal open_bar
        if open_bar:
            open_bar = False
            bar.__exit__(None, None, None)

    def advance(record: Record | None) -> None:
        nonlocal done
        if record is None:
            # Every record is read; the bar is done, the writer may not be.
            close_bar()
            writing.start()
            return
        done += 1
        bar.update(1, current_item=record)

    bar.__enter__()
    try:
        yield advance
    finally:
        close_bar()
        writing.stop()


class _WritingTimer:
    """Elapsed seconds on stderr while the store finishes writing, so a long commit does not look hung."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tty = sys.stderr.isatty()
        self._printed = False

    def start(self) -> None:
        self.started = time.monotonic()
        if not self._tty:
            return  # a log gets the summary with the total time; a ticking line would only clutter it
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._printed = True
            seconds = time.monotonic() - self.started
            click.echo(f"\r{self.label}: all records read, finishing ({seconds:.0f} s)", err=True, nl=False)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        if self._printed:
            click.echo(err=True)


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


def _report_problems(stats: BuildStats) -> None:
    # printable(): a record's text or a file's name must not break the report's
    # lines (or the terminal) with control characters or undecodable bytes.
    for skip in stats.skipped[:MAX_LISTED_PROBLEMS]:
        _echo(f"skipped {printable(skip.origin)}: {printable(skip.reason)}")
    for origin, warning in stats.warnings[:MAX_LISTED_PROBLEMS]:
        _echo(f"warning {printable(origin)}: {printable(warning)}")
    hidden = max(0, len(stats.skipped) - MAX_LISTED_PROBLEMS) + max(0, len(stats.warnings) - MAX_LISTED_PROBLEMS)
    if hidden:
        _echo(f"... and {hidden} more")


def _report_reasons(stats: BuildStats) -> None:
    reasons = stats.skip_reasons()
    if reasons:
        _echo("skipped by reason: " + "; ".join(f"{printable(reason)}: {n}" for reason, n in sorted(reasons.items())))


def _report(stats: BuildStats, quiet: bool) -> None:
    if quiet:
        return
    _report_problems(stats)
    _echo(stats.summary())
    _report_reasons(stats)


def _sync_changes(stats: SyncStats) -> list[tuple[str, str, str]]:
    return (
        [("add", i, w) for i, w in stats.added]
        + [("update", i, w) for i, w in stats.updated]
        + [("delete", i, w) for i, w in stats.deleted]
    )


def _report_sync(stats: SyncStats, quiet: bool) -> None:
    changes = _sync_changes(stats)
    if stats.dry_run:
        # The plan is the result of a dry run: stdout, one tab-separated line per document, even with -q.
        for action, doc_id, where in changes:
            click.echo(f"{action}\t{doc_id}\t{where}")
    if quiet:
        return
    _report_problems(stats)
    if not stats.dry_run:
        past = {"add": "added", "update": "updated", "delete": "deleted"}
        for action, doc_id, where in changes[:MAX_LISTED_PROBLEMS]:
            _echo(f"{past[action]} {doc_id}" + (f" ({where})" if where != doc_id else ""))
        if len(changes) > MAX_LISTED_PROBLEMS:
            _echo(f"... and {len(changes) - MAX_LISTED_PROBLEMS} more changes")
    for doc_id, why in stats.kept[:MAX_LISTED_PROBLEMS]:
        _echo(f"kept {printable(doc_id)}: {printable(why)}")
    if len(stats.kept) > MAX_LISTED_PROBLEMS:
        _echo(f"... and {len(stats.kept) - MAX_LISTED_PROBLEMS} more kept")
    _echo(stats.summary())
    _report_reasons(stats)
    if not changes:
        _echo("nothing would change" if stats.dry_run else "the index is up to date: nothing to add, update or delete")


def _terminal(fragment: str) -> str:
    """Turn a highlighted HTML fragment into terminal text, matches in bold."""
    marked = _MARK_RE.sub(lambda m: click.style(m.group(1), bold=True, fg="yellow"), fragment)
    return html.unescape(marked)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="zhsearch")
def cli() -> None:
    """zhsearch: full-text search for Chinese articles.

    \b
    Typical use:
      zhsearch build corpus/          # index a folder of articles
      zhsearch search 混合专家         # query it from the shell
      zhsearch serve                  # web page and JSON API on :8000
    """


def _write(
    write: Callable[..., BuildStats],
    label: str,
    paths: tuple[str, ...],
    index_dir: Path,
    options: ReadOptions,
    strict: bool,
    quiet: bool,
) -> None:
    """Run ``build_index`` or ``add_documents`` with a progress bar, report, and exit 1 on a strict skip."""
    failure: StrictError | None = None
    with _errors(), _progress(paths, options, quiet, label) as progress:
        try:
            stats = write(paths, _index(index_dir), progress=progress, options=options, strict=strict)
        except StrictError as exc:
            stats, failure = exc.stats, exc
    _report(stats, quiet)
    if failure is not None:
        raise click.ClickException(str(failure))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@index_option
@corpus_options
@quiet_option
def build(
    paths: tuple[str, ...],
    index_dir: Path,
    fields: dict[str, str],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    json_key: str | None,
    strict: bool,
    quiet: bool,
) -> None:
    """Build a new index from PATHS and switch to it atomically.

    PATHS are files or folders (read recursively) of .jsonl, .json, .csv,
    .md, .txt and .html articles. The old index keeps serving until the new
    one is complete. The summary counts every record as indexed or skipped,
    with the reason.

    \b
    Examples:
      zhsearch build corpus/ more/articles.jsonl
      zhsearch build export.csv --field title=headline --field body=content
      zhsearch build site/ --include '*.md' --exclude 'drafts/**' --strict
    """
    _write(build_index, "indexing", paths, index_dir, _read_options(fields, include, exclude, json_key), strict, quiet)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@index_option
@corpus_options
@quiet_option
def add(
    paths: tuple[str, ...],
    index_dir: Path,
    fields: dict[str, str],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    json_key: str | None,
    strict: bool,
    quiet: bool,
) -> None:
    """Add articles from PATHS, replacing any with the same id.

    Creates the index if there is none. Takes the same options as build.

    \b
    Example:
      zhsearch add new-posts/
    """
    _write(add_documents, "adding", paths, index_dir, _read_options(fields, include, exclude, json_key), strict, quiet)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@index_option
@corpus_options
@click.option("--dry-run", is_flag=True, help="Print what would change (stdout) and write nothing.")
@quiet_option
def sync(
    paths: tuple[str, ...],
    index_dir: Path,
    fields: dict[str, str],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    json_key: str | None,
    strict: bool,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Bring the index up to date with PATHS: add new, re-index changed, delete vanished articles.

    Changes are found by content hash, so a second run changes nothing. Only
    documents that came from PATHS (and match --include/--exclude) can be
    deleted; documents from other folders are left alone, and so are those
    whose file could not be read this time. Creates the index if there is
    none.

    \b
    Examples:
      zhsearch sync corpus/ --dry-run
      zhsearch sync corpus/ ~/exports/articles.jsonl -q
    """
    options = _read_options(fields, include, exclude, json_key)
    failure: StrictError | None = None
    with _errors(), _progress(paths, options, quiet, "syncing") as progress:
        try:
            stats = sync_index(
                paths, _index(index_dir), progress=progress, options=options, strict=strict, dry_run=dry_run
            )
        except StrictError as exc:
            assert isinstance(exc.stats, SyncStats)
            stats, failure = exc.stats, exc
    _report_sync(stats, quiet)
    if failure is not None:
        raise click.ClickException(str(failure))


@cli.command()
@click.argument("ids", nargs=-1, required=True)
@index_option
@quiet_option
def delete(ids: tuple[str, ...], index_dir: Path, quiet: bool) -> None:
    """Delete the documents with the given IDS.

    Exits with status 1 if any id was not in the index.

    \b
    Example:
      zhsearch delete ernie-45-open-source posts/old.md
    """
    with _errors():
        deleted, missing = delete_documents(ids, _index(index_dir))
    if not quiet:
        click.echo(f"deleted {len(deleted)} documents", err=True)
    if missing:
        raise click.ClickException("not in the index: " + ", ".join(missing))


@cli.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(index_dir: Path, as_json: bool) -> None:
    """Show the document count, size on disk, format version and build time.

    \b
    Example:
      zhsearch info --index /srv/zhsearch/index
    """
    with _errors():
        searcher = Searcher(_index(index_dir))
        try:
            details = searcher.info()
        finally:
            searcher.close()
    data = details.to_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    labels = {
        "path": "index",
        "backend": "backend",
        "documents": "documents",
        "size_bytes": "size on disk",
        "schema_version": "format version",
        "built_at": "built at (UTC)",
        "updated_at": "updated at (UTC)",
        "sources": "built from",
        "user_dict": "user dictionary",
    }
    for key, label in labels.items():
        value = data[key]
        if key == "size_bytes":
            value = f"{details.size_bytes / 1e6:.1f} MB"
        elif key == "sources":
            value = ", ".join(details.sources) or "-"
        elif key == "user_dict":
            found = details.user_dict
            value = f"{found['path']} (sha256 {found['sha256'][:12]})" if found else "-"
        click.echo(f"{label + ':':<17} {value}")
    # A cluster's state: can it take writes now, and how is each node.
    if details.writable is not None:
        click.echo(f"{'writable:':<17} {'yes' if details.writable else 'no (the cluster has no leader)'}")
    for node, state in details.nodes.items():
        click.echo(f"{'node:':<17} {node} {state}")
    for warning in details.warnings:
        click.echo(f"warning: {warning}", err=True)


@cli.command()
@click.argument("query")
@click.option("-n", "limit", default=10, show_default=True, type=click.IntRange(1, PAGE_SIZE_CAP), help="Results.")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1), help="Page of results.")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON as /api/search.")
@index_option
def search(query: str, limit: int, page: int, as_json: bool, index_dir: Path) -> None:
    """Search the index for QUERY and print the best matches.

    Words are ANDed; "quoted phrases" match adjacent text; title:词 searches
    one field.

    \b
    Examples:
      zhsearch search 混合专家
      zhsearch search '"ERNIE 4.5" 开源' -n 5 --json
    """
    with _errors():
        searcher = Searcher(_index(index_dir))
        try:
            result = searcher.search(query, page=page, size=limit)
        finally:
            searcher.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    first = (page - 1) * limit
    for rank, hit in enumerate(result.hits, start=first + 1):
        meta = " · ".join(x for x in (hit.date, hit.source, ", ".join(hit.tags)) if x)
        click.echo(f"{rank}. {_terminal(hit.title_html)}  [{hit.id}]")
        if meta:
            click.echo(f"   {meta}")
        if hit.url:
            click.echo(f"   {hit.url}")
        if hit.missing:
            click.echo(f"   (without: {', '.join(hit.missing)})")
        click.echo(f"   {_terminal(hit.snippet_html)}")
        click.echo()
    found = f"{result.total} result{'' if result.total == 1 else 's'}"
    if result.total_full < result.total and not result.relaxed:
        found += f" ({result.total_full} with every word)"
    shown = f"showing {first + 1}-{first + len(result.hits)}" if result.hits else "none on this page"
    click.echo(f"{found}, {shown} ({result.took_ms:.1f} ms)", err=True)


@cli.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
def serve(index_dir: Path, host: str, port: int, workers: int) -> None:
    """Serve the search page and the JSON API with gunicorn (production server).

    Each worker runs one search at a time, on one CPU core; its event loop
    reads requests, so clients that send slowly do not hold a worker up.

    \b
    Example:
      zhsearch serve --host 0.0.0.0 --port 8080 --workers 4
    """
    with _errors():
        # Fail here, with the CLI's message, rather than inside every worker.
        searcher = Searcher(_index(index_dir))
        try:
            searcher.info()
        finally:
            searcher.close()
    os.environ[INDEX_ENV] = str(index_dir.resolve())
    from .server import run_server

    with _errors():  # a setting the web app refuses (ZHSEARCH_*) is reported before the server starts
        run_server(host=host, port=port, workers=workers)
