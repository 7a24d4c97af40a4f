"""Completion and "did you mean" checked against an expected list (``suggest_cases.tsv``) on a real index.

Both go through indexer's public API on the same code path as the service:
``Suggester.suggest`` with the phrase check ``/api/suggest`` makes, and
``did_you_mean`` with the page's count of full matches. A suggestion made only
of single characters (every segmented term one character) is gibberish and
fails its case whatever was expected.

    python bench/suggest_eval.py /tmp/articles-index-v3 [bench/suggest_cases.tsv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from indexer import (
    Searcher,
    StoreSettings,
    Suggester,
    did_you_mean,
    full_matches,
    init_jieba,
    is_gibberish,
    titles_with,
)

CASES = Path(__file__).parent / "suggest_cases.tsv"
KINDS = ("complete", "didyoumean")
# "Nothing may be suggested" in the expected column.
NOTHING = "-"
# What the page and the API use: the box shows 8 completions, a page lists 10 results.
COMPLETIONS = 8
PAGE_SIZE = 10
# The service gives "did you mean" the request's time left, 2 s without a limit.
DID_YOU_MEAN_S = 2.0


@dataclass(frozen=True)
class CaseResult:
    """One case: what was asked, what was expected, what came back, and whether that is as expected."""

    kind: str
    input: str
    expected: str
    got: tuple[str, ...]
    ok: bool
    gibberish: bool
    note: str = ""


def load_suggest_cases(path: Path) -> list[tuple[str, str, str, str]]:
    """(kind, input, expected, note) rows of a cases file; ``#`` lines are comments, the first row a header."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = [line for line in f if line.strip() and not line.startswith("#")]
    rows: list[tuple[str, str, str, str]] = []
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        kind = (row.get("kind") or "").strip()
        if kind not in KINDS:
            raise ValueError(f"{path}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        rows.append((kind, row["input"], row["expected"].strip(), (row.get("note") or "").strip()))
    return rows


def run_suggest_cases(index: Path | StoreSettings, cases: Path = CASES) -> list[CaseResult]:
    """Run every case of ``cases`` against ``index`` (a Whoosh index directory, or any backend's settings)."""
    init_jieba()
    searcher = Searcher(index)
    try:
        suggester = Suggester.from_store(searcher.store)

        def count(candidate: str) -> int:
            return full_matches(searcher.search(candidate, size=1, facets=False))

        results: list[CaseResult] = []
        for kind, text, expected, note in load_suggest_cases(cases):
            if kind == "complete":
                got = tuple(s.text for s in suggester.suggest(text, limit=COMPLETIONS, verify=titles_with(searcher)))
                gibberish = any(len(g) > 1 and is_gibberish(g) for g in got)
                ok = (expected in got if expected != NOTHING else not got) and not gibberish
            else:
                page = searcher.search(text, size=PAGE_SIZE)
                found = did_you_mean(text, page, suggester, count, deadline=time.monotonic() + DID_YOU_MEAN_S)
                got = (found.query,) if found else ()
                gibberish = found is not None and is_gibberish(found.query)
                ok = (found.query == expected if found else expected == NOTHING) and not gibberish
            results.append(CaseResult(kind, text, expected, got, ok, gibberish, note))
        return results
    finally:
        searcher.close()


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "—"


def render_suggest_cases(results: list[CaseResult]) -> str:
    """A Markdown table of the cases and a last line "N/M cases as expected"."""
    lines = ["| kind | input | expected | got | as expected |", "|---|---|---|---|---|"]
    for r in results:
        if r.kind == "complete":
            got = ", ".join(r.got)
        else:
            got = r.got[0] if r.got else NOTHING
        verdict = "yes" if r.ok else ("**no: gibberish**" if r.gibberish else "**no**")
        lines.append(f"| {r.kind} | {_cell(r.input)} | {_cell(r.expected)} | {_cell(got)} | {verdict} |")
    passed = sum(r.ok for r in results)
    gibberish = sum(r.gibberish for r in results)
    lines.append("")
    lines.append(f"{passed}/{len(results)} cases as expected" + (f" ({gibberish} gibberish)" if gibberish else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table for an index; exit 1 when a case is not as expected."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="the index directory")
    parser.add_argument("cases", type=Path, nargs="?", default=CASES, help="the cases file (TSV)")
    args = parser.parse_args(argv)
    results = run_suggest_cases(args.index, args.cases)
    print(render_suggest_cases(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
