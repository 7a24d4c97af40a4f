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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .build import BuildStats, add_documents, build_index, delete_documents
from .corpus import Record, count_records
from .errors import IndexerError
from .search import MAX_PAGE_SIZE, Searcher

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


def quiet_option(f: F) -> F:
    """``-q/--quiet``: no progress bar or summary on stderr."""
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")(f)


@contextmanager
def _errors() -> Iterator[None]:
    # Library errors become one-line messages and exit status 1, never a traceback.
    try:
        yield
    except IndexerError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _progress(paths: tuple[str, ...], quiet: bool, label: str) -> Iterator[Callable[[Record], None] | None]:
    if quiet:
        yield None
        return
    bar: Any
    with click.progressbar(
        length=count_records(paths),
        label=label,
        file=sys.stderr,
        show_pos=True,
        show_eta=True,
        item_show_func=lambda _: None,
    ) as bar:

        def advance(_record: Record) -> None:
            bar.update(1)

        yield advance


def _report(stats: BuildStats, quiet: bool) -> None:
    if quiet:
        return

    def echo(msg: str) -> None:
        click.echo(msg, err=True)

    for skip in stats.skipped[:MAX_LISTED_PROBLEMS]:
        echo(f"skipped {skip.origin}: {skip.reason}")
    for origin, warning in stats.warnings[:MAX_LISTED_PROBLEMS]:
        echo(f"warning {origin}: {warning}")
    hidden = max(0, len(stats.skipped) - MAX_LISTED_PROBLEMS) + max(0, len(stats.warnings) - MAX_LISTED_PROBLEMS)
    if hidden:
        echo(f"... and {hidden} more")
    echo(stats.summary())
    reasons = stats.skip_reasons()
    if reasons:
        echo("skipped by reason: " + "; ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items())))


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


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@index_option
@quiet_option
def build(paths: tuple[str, ...], index_dir: Path, quiet: bool) -> None:
    """Build a new index from PATHS and switch to it atomically.

    PATHS are files or folders (read recursively) of .jsonl, .md and .txt
    articles. The old index keeps serving until the new one is complete.

    \b
    Example:
      zhsearch build corpus/ more/articles.jsonl
    """
    with _errors(), _progress(paths, quiet, "indexing") as progress:
        stats = build_index(paths, index_dir, progress=progress)
    _report(stats, quiet)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@index_option
@quiet_option
def add(paths: tuple[str, ...], index_dir: Path, quiet: bool) -> None:
    """Add articles from PATHS, replacing any with the same id.

    \b
    Example:
      zhsearch add new-posts/
    """
    with _errors(), _progress(paths, quiet, "adding") as progress:
        stats = add_documents(paths, index_dir, progress=progress)
    _report(stats, quiet)


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
        deleted, missing = delete_documents(ids, index_dir)
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
        searcher = Searcher(index_dir)
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
    }
    for key, label in labels.items():
        value = data[key]
        if key == "size_bytes":
            value = f"{details.size_bytes / 1e6:.1f} MB"
        elif key == "sources":
            value = ", ".join(details.sources) or "-"
        click.echo(f"{label + ':':<17} {value}")


@cli.command()
@click.argument("query")
@click.option("-n", "limit", default=10, show_default=True, type=click.IntRange(1, MAX_PAGE_SIZE), help="Results.")
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
        searcher = Searcher(index_dir)
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
        click.echo(f"   {_terminal(hit.snippet_html)}")
        click.echo()
    click.echo(
        f"{result.total} results, showing {first + 1 if result.hits else 0}-{first + len(result.hits)} "
        f"({result.took_ms:.1f} ms)",
        err=True,
    )


@cli.command()
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
def serve(index_dir: Path, host: str, port: int, workers: int) -> None:
    """Serve the search page and the JSON API with gunicorn (production server).

    \b
    Example:
      zhsearch serve --host 0.0.0.0 --port 8080 --workers 4
    """
    with _errors():
        # Fail here, with the CLI's message, rather than inside every worker.
        searcher = Searcher(index_dir)
        try:
            searcher.info()
        finally:
            searcher.close()
    os.environ[INDEX_ENV] = str(index_dir.resolve())
    from .server import run_server

    run_server(host=host, port=port, workers=workers)
