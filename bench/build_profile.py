"""Where a zhsearch build spends its time: per stage and per field, measured in one writer process.

    python bench/build_profile.py [--data FILE] [--limit N] [--cprofile N]

The multi-process build splits the documents between writer processes, each
running what is measured here on its share; the parent only reads the corpus
and hands documents over. So this script reads the articles, then writes them
with one writer in this process, timing each stage with CPU clocks
(``time.process_time``, robust to other jobs on the machine), and reports
CPU seconds per stage and per field:

- read: the corpus reader (JSON Lines parsing, ``Article`` records, ids);
- prepare: the per-document field values (``_fields``: content, hash);
- analyse: turning one field's text into (term, frequency, weight, positions)
  tuples, what ``field.index()`` returns; the analyzer alone is also timed
  (segmenting with rjieba, the rest of ``iter_terms``, and the sub-words and
  identifier parts that index mode adds over query mode);
- add postings: putting those tuples into the posting pool (and spilling
  sorted runs to disk when the pool is full);
- stored fields: stored values, lengths and columns (``add_field``);
- flush: sorting the postings and writing the posting lists per field;
- merge and commit: merging segments (none in a fresh build) and the TOC.

``--writer stock`` measures Whoosh's own ``SegmentWriter.add_document`` (the
loop is reproduced here with timers around each field), ``--writer zhsearch``
the writer the Whoosh backend builds with; the default measures both, side by
side. ``--cprofile N`` also prints the N functions with the most own time
under cProfile (a separate pass: cProfile slows Python code unevenly).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from whoosh import index as whoosh_index  # noqa: E402
from whoosh.writing import SegmentWriter  # noqa: E402

from indexer import analysis  # noqa: E402
from indexer.backends.whoosh import store  # noqa: E402
from indexer.backends.whoosh import writer as writer_module  # noqa: E402
from indexer.backends.whoosh.schema import build_schema  # noqa: E402
from indexer.build import BuildStats, accounted  # noqa: E402
from indexer.corpus import Article, iter_records  # noqa: E402

DEFAULT_DATA = BENCH_DIR.parent.parent / "shared" / "data" / "articles.jsonl"
TEXT_FIELDS = ("title", "content", "content_bi")
clock = time.process_time


class Timer:
    """CPU seconds accumulated under (stage, field) keys."""

    def __init__(self) -> None:
        self.cpu: dict[tuple[str, str], float] = defaultdict(float)
        self.wall: dict[str, float] = {}

    def add(self, stage: str, field: str, seconds: float) -> None:
        """Add ``seconds`` to one cell."""
        self.cpu[(stage, field)] += seconds


def field_group(name: str) -> str:
    """The row a field's time goes to: each text field on its own, the small ones together."""
    return name if name in TEXT_FIELDS else "other fields"


def read_articles(data: Path, limit: int | None, timer: Timer) -> list[Article]:
    """Read the corpus as a build does, timing it."""
    started = clock()
    stats = BuildStats()
    articles = []
    for article in accounted(iter_records([str(data)], None, excluded=stats.excluded), stats):
        articles.append(article)
        if limit is not None and len(articles) >= limit:
            break
    timer.add("read", "all", clock() - started)
    return articles


def prepare(articles: list[Article], timer: Timer) -> list[dict[str, Any]]:
    """The field values the store hands its writer, timed."""
    started = clock()
    docs = [store._fields(a) for a in articles]
    timer.add("prepare", "all", clock() - started)
    return docs


def time_analyzer(docs: list[dict[str, Any]], timer: Timer) -> dict[str, int]:
    """The analyzer alone on the content field: segmenting, the rest, and what index mode adds."""
    seg = analysis.segmenter()
    texts = [d["content"] for d in docs]
    started = clock()
    for text in texts:
        for m in analysis._HAN_RUN_RE.finditer(analysis.normalize(text)):
            seg.tokenize(m.group())
    timer.add("analyser only", "content: rjieba segmenting", clock() - started)
    counts = {}
    for mode in ("query", "index"):
        n = 0
        started = clock()
        for text in texts:
            for _ in analysis.iter_terms(text, mode):
                n += 1
        timer.add("analyser only", f"content: iter_terms {mode} mode", clock() - started)
        counts[mode] = n
    started = clock()
    for text in texts:
        analysis.han_bigrams(text)
    timer.add("analyser only", "content_bi: han_bigrams", clock() - started)
    return counts


def new_index(tmp: Path, name: str) -> Any:
    """An empty index with zhsearch's schema."""
    path = tmp / name
    path.mkdir()
    return whoosh_index.create_in(str(path), build_schema())


def _timed_method(obj: Any, name: str, timer: Timer, stage: str) -> None:
    """Wrap ``obj.name`` so its calls count under ``stage`` (for rare calls such as spilling a run)."""
    inner = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            timer.add(stage, "all", clock() - started)

    setattr(obj, name, wrapper)


def stock_add(writer: SegmentWriter, fields: dict[str, Any], timer: Timer) -> None:
    """``SegmentWriter.add_document`` as Whoosh 3.54 runs it, with a timer around each field's stages."""
    perdoc = writer.perdocwriter
    schema = writer.schema
    docnum = writer.docnum
    add_post = writer.pool.add
    perdoc.start_doc(docnum)
    for name in sorted(n for n in fields if not n.startswith("_")):
        value = fields[name]
        if value is None:
            continue
        field = schema[name]
        group = field_group(name)
        length = 0
        if field.indexed:
            t0 = clock()
            items = list(field.index(value))
            t1 = clock()
            for tbytes, freq, weight, vbytes in items:
                if field.scorable:
                    length += freq
                add_post((name, tbytes, docnum, weight, vbytes))
            t2 = clock()
            timer.add("analyse", group, t1 - t0)
            timer.add("add postings", group, t2 - t1)
        t2 = clock()
        custom = fields.get(f"_stored_{name}", value)
        perdoc.add_field(name, field, custom if field.stored else None, length)
        if field.column_type and custom is not None:
            perdoc.add_column_value(name, field.column_type, field.to_column_value(custom))
        timer.add("stored fields", "all", clock() - t2)
    t3 = clock()
    perdoc.finish_doc()
    timer.add("stored fields", "all", clock() - t3)
    writer._added = True
    writer.docnum += 1


def _field_timing(fieldwriter: Any, timer: Timer) -> None:
    """Attribute the posting writer's time to fields, from its start_field/finish_field calls."""
    state: dict[str, Any] = {"field": None, "t": 0.0}
    start, finish = fieldwriter.start_field, fieldwriter.finish_field

    def start_field(name: str, fieldobj: Any) -> Any:
        state["field"], state["t"] = name, clock()
        return start(name, fieldobj)

    def finish_field() -> Any:
        result = finish()
        timer.add("flush: write postings", field_group(state["field"]), clock() - state["t"])
        return result

    fieldwriter.start_field, fieldwriter.finish_field = start_field, finish_field


def _commit_toc(writer: Any, segments: list[Any], timer: Timer) -> None:
    """The end of a commit, timed: close the new segment, write the table of contents, clean up."""
    started = clock()
    writer._close_segment()
    segments.append(writer.get_segment())
    writer._commit_toc(segments)
    writer._finish()
    timer.add("commit (TOC, clean-up)", "all", clock() - started)


def commit_stock(writer: SegmentWriter, timer: Timer) -> None:
    """``SegmentWriter.commit`` taken apart into merge, sort, write postings and TOC."""
    t0 = clock()
    segments = writer._merge_segments(None, None, None)
    t1 = clock()
    timer.add("merge segments", "all", t1 - t0)
    writer.perdocwriter.close()
    pdr = writer.per_document_reader()
    t2 = clock()
    timer.add("stored fields", "all", t2 - t1)
    # Without spilled runs this is the in-memory sort; with them, a lazy merge of the runs.
    postings = writer.pool.iter_postings()
    t3 = clock()
    timer.add("flush: sort postings", "all", t3 - t2)
    _field_timing(writer.fieldwriter, timer)
    writer.fieldwriter.add_postings(writer.schema, pdr, postings)
    writer.fieldwriter.close()
    pdr.close()
    _commit_toc(writer, segments, timer)


def run_stock(ix: Any, docs: list[dict[str, Any]], timer: Timer) -> None:
    """Write ``docs`` with Whoosh's stock writer, timed."""
    writer = SegmentWriter(ix, limitmb=store.WRITER_LIMIT_MB, compound=False)
    _timed_method(writer.pool, "save", timer, "spill sorted runs")
    started = time.perf_counter()
    for fields in docs:
        stock_add(writer, fields, timer)
    # The spills so far happened inside pool.add: count them once, under their own row.
    spill = timer.cpu.get(("spill sorted runs", "all"), 0.0)
    share = sum(v for (s, _), v in timer.cpu.items() if s == "add postings")
    for key in [k for k in timer.cpu if k[0] == "add postings"]:
        timer.cpu[key] -= spill * timer.cpu[key] / share if share else 0.0
    commit_stock(writer, timer)
    timer.wall["write"] = time.perf_counter() - started


class _TimedWriter(writer_module.FastSegmentWriter):  # type: ignore[misc]
    """The Whoosh backend's build writer, with timers around its stages."""

    timer: Timer

    def analyse_content(self, content: str, title_len: int) -> Any:
        started = clock()
        try:
            return super().analyse_content(content, title_len)
        finally:
            # One pass gives both; the title's share is what its own pass would cost, so it all counts as content.
            self.timer.add("analyse", "content (and title)", clock() - started)

    def analyse_bigrams(self, folded: str) -> Any:
        started = clock()
        try:
            return super().analyse_bigrams(folded)
        finally:
            self.timer.add("analyse", "content_bi", clock() - started)

    def analyse_field(self, name: str, field: Any, value: Any) -> Any:
        started = clock()
        try:
            return super().analyse_field(name, field, value)
        finally:
            self.timer.add("analyse", field_group(name), clock() - started)


def _timed_pool(pool: Any, timer: Timer) -> None:
    inner = pool.add_postings

    def add_postings(fieldname: str, docnum: int, postings: Any) -> None:
        started = clock()
        inner(fieldname, docnum, postings)
        timer.add("add postings", field_group(fieldname), clock() - started)

    pool.add_postings = add_postings
    _timed_method(pool, "spill", timer, "spill sorted runs")


def _timed_stored(perdoc: Any, timer: Timer) -> None:
    for name in ("start_doc", "add_field", "add_column_value", "finish_doc"):
        _timed_method(perdoc, name, timer, "stored fields")


def run_zhsearch(ix: Any, docs: list[dict[str, Any]], timer: Timer) -> None:
    """Write ``docs`` with the writer the Whoosh backend builds with, timed around its stages."""
    writer = _TimedWriter(ix, limitmb=store.WRITER_LIMIT_MB, compound=False)
    writer.timer = timer
    _timed_pool(writer.pool, timer)
    _timed_stored(writer.perdocwriter, timer)
    _field_timing(writer.fieldwriter, timer)
    started = time.perf_counter()
    for fields in docs:
        writer.add_document(**fields)
    t0 = clock()
    segments = writer._merge_segments(None, None, None)
    t1 = clock()
    timer.add("merge segments", "all", t1 - t0)
    writer._flush_segment()
    _commit_toc(writer, segments, timer)
    timer.wall["write"] = time.perf_counter() - started


WRITERS: dict[str, Callable[[Any, list[dict[str, Any]], Timer], None]] = {"stock": run_stock, "zhsearch": run_zhsearch}

STAGE_ORDER = (
    "read",
    "prepare",
    "analyse",
    "add postings",
    "spill sorted runs",
    "stored fields",
    "flush: sort postings",
    "flush: write postings",
    "merge segments",
    "commit (TOC, clean-up)",
)


def report(timers: dict[str, Timer], counts: dict[str, int], n_docs: int, mb: float) -> str:
    """A Markdown table: CPU seconds per stage and field for each writer, with shares of the total."""
    names = list(timers)
    keys = sorted(
        {k for t in timers.values() for k in t.cpu if k[0] != "analyser only"},
        key=lambda k: (STAGE_ORDER.index(k[0]) if k[0] in STAGE_ORDER else 99, k[1]),
    )
    totals = {n: sum(v for k, v in timers[n].cpu.items() if k[0] != "analyser only") for n in names}
    head = "| stage | field | " + " | ".join(f"{n} CPU s | {n} share" for n in names) + " |"
    lines = [head, "|---|---|" + "---:|---:|" * len(names)]
    for key in keys:
        cells = []
        for n in names:
            v = timers[n].cpu.get(key)
            cells += ["–", "–"] if v is None else [f"{v:.2f}", f"{100 * v / totals[n]:.1f}%"]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        cells += [f"**{totals[n]:.2f}**", "100%"]
    lines.append("| **total** | | " + " | ".join(cells) + " |")
    walls = ", ".join(f"{n} {timers[n].wall.get('write', 0):.1f} s" for n in names)
    out = [
        f"{n_docs:,} articles ({mb:.1f} MB), one writer process; wall time of the write alone: {walls}.",
        "",
        *lines,
        "",
        "The analyser alone on the content field (CPU s, not part of the total):",
        "",
        "| step | CPU s |",
        "|---|---:|",
    ]
    first = timers[names[0]]
    for (stage, what), v in sorted(first.cpu.items()):
        if stage == "analyser only":
            out.append(f"| {what} | {v:.2f} |")
    out.append("")
    out.append(
        f"Terms the analyser emits for the content field: {counts['query']:,} in query mode (the words and "
        f"whole identifiers), {counts['index']:,} in index mode (+{counts['index'] - counts['query']:,} sub-words "
        "and identifier parts)."
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Profile the build stages on a sample and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="articles JSON Lines file")
    parser.add_argument("--limit", type=int, default=None, help="only the first N articles of --data")
    parser.add_argument("--writer", choices=sorted(WRITERS), action="append", help="default: every writer")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also print cProfile's top N functions")
    args = parser.parse_args(argv)
    analysis.init_jieba()
    analysis.normalize("預熱")  # builds the folding table outside the timings
    chosen = args.writer or list(WRITERS)
    timers: dict[str, Timer] = {}
    base = Timer()
    articles = read_articles(args.data, args.limit, base)
    docs = prepare(articles, base)
    counts = time_analyzer(docs, base)
    mb = sum(len(a.title.encode()) + len(a.body.encode()) for a in articles) / 1e6
    with tempfile.TemporaryDirectory(prefix="zhsearch-profile-") as tmp:
        for name in chosen:
            timer = Timer()
            timer.cpu.update(base.cpu)
            WRITERS[name](new_index(Path(tmp), name), docs, timer)
            timers[name] = timer
            print(f"{name}: {timer.wall['write']:.1f} s", file=sys.stderr)
        print(report(timers, counts, len(docs), mb))
        for name in chosen if args.cprofile else ():
            profile = cProfile.Profile()
            ix = new_index(Path(tmp), f"{name}-cprofile")
            profile.enable()
            WRITERS[name](ix, docs, Timer())
            profile.disable()
            print(f"\ncProfile, {name} writer, top {args.cprofile} by own time:\n")
            pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
