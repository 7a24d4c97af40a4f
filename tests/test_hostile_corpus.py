"""Worst cases (issue 13): hostile records, special files, sync by id, a full disk and a read-only index.

Everything is real: Whoosh indexes on disk, jieba, the CLI through click's
CliRunner or a subprocess (where a hang or a child process's output must be
seen), and a small tmpfs for the full disk (mounting needs root: skipped
where not permitted, failed under CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from indexer import Searcher, build_index, open_store
from indexer.cli import cli
from indexer.corpus import MAX_TAGS, Skipped, iter_records
from indexer.errors import IndexWriteError
from indexer.readers.formats import MAX_FRONT_MATTER_VALUES
from indexer.sync import sync_index

from .conftest import MINI_CORPUS, ROOT

PYTHON = sys.executable
GOOD = {"id": "good-1", "title": "向量数据库", "body": "向量数据库支持相似度检索。"}
GOOD_2 = {"id": "good-2", "title": "容器编排", "body": "容器编排调度集群里的服务。"}


def line(record: object) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


# One hostile JSON Lines record per case, written between two good ones (so it is line 2), and a
# fragment of the reason it must be skipped with. Each is a member of a class of issue 13.
HOSTILE_LINES: dict[str, tuple[str, str]] = {
    # Class 5: fields without bounds.
    "100,000 tags": (
        line({**GOOD, "id": "h", "tags": [f"t{i}" for i in range(100_000)]}),
        f"more than {MAX_TAGS} tags",
    ),
    "100,000 tags as a string": (line({**GOOD, "id": "h", "tags": ",".join(f"t{i}" for i in range(100_000))}), "tags"),
    "a tag of 10,000 characters": (line({**GOOD, "id": "h", "tags": ["长" * 10_000]}), "a tag is 10,000 characters"),
    "a source of 100,000 characters": (
        line({**GOOD, "id": "h", "source": "源" * 100_000}),
        "field 'source' is 100,000",
    ),
    "a url of 1 MB": (line({**GOOD, "id": "h", "url": "https://x.example/" + "a" * 1_000_000}), "field 'url' is"),
    "an id of 5,000 characters": (line({**GOOD, "id": "i" * 5_000}), "field 'id' is 5,000 characters"),
    # Class 7: one bad record must not abort the write.
    "a lone surrogate": ('{"id": "h", "title": "坏\\ud800", "body": "正文"}\n', "lone surrogate"),
    "JSON nested 200,000 levels": ("[" * 200_000 + "]" * 200_000 + "\n", "nested too deeply"),
    "a nested field 200,000 levels": ('{"id": "h", "body": "b", "x": ' + "[" * 200_000 + "]" * 200_000 + "}\n", "deep"),
    "a number of 5,000 digits": ('{"id": "h", "title": ' + "7" * 5_000 + ', "body": "正文"}\n', "digits"),
    "a list in the title": (
        line({"id": "h", "title": ["a", "b"], "body": "正文"}),
        "field 'title' must be text, not list",
    ),
    "a tag that is a dict": (line({**GOOD, "id": "h", "tags": [{"name": "x"}]}), "a tag must be text, not dict"),
    "an id that is a list": (line({**GOOD, "id": ["a", "b"]}), "field 'id' must be text or a whole number, not list"),
    "an id with a line break": (line({**GOOD, "id": "a\nb"}), "field 'id' holds a control character"),
    "a NUL character": (line({"id": "h", "title": "标题", "body": "正\u0000文"}), "NUL"),
    "a body that is a list": (line({"id": "h", "title": "标题", "body": ["正文"]}), "field 'body' must be text"),
    "binary garbage": (bytes(range(128, 256)).decode("latin-1") + "\n", "invalid JSON"),
}


def hostile_jsonl(folder: Path, bad: str, name: str = "news.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(line(GOOD) + bad + line(GOOD_2))
    return path


def stored_ids(index: Path) -> set[str]:
    store = open_store(index)
    try:
        return set(store.manifest())
    finally:
        store.close()


def run_cli(*args: str, timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "indexer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "ZHSEARCH_BUILD_PROCS": "2", **(env or {})},
    )


# -- hostile records ------------------------------------------------------------


@pytest.mark.parametrize("case", list(HOSTILE_LINES))
def test_a_hostile_record_is_skipped_with_file_and_line_and_the_rest_is_indexed(tmp_path: Path, case: str) -> None:
    bad, reason = HOSTILE_LINES[case]
    hostile_jsonl(tmp_path / "corpus", bad)
    started = time.perf_counter()
    stats = build_index([tmp_path / "corpus"], tmp_path / "index")
    assert time.perf_counter() - started < 30
    assert [(s.origin, reason in s.reason) for s in stats.skipped] == [("news.jsonl:2", True)], stats.skipped
    assert stats.indexed == 2
    assert stored_ids(tmp_path / "index") == {"good-1", "good-2"}


def test_build_add_and_sync_report_every_hostile_record_and_index_the_rest(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for n, (bad, _) in enumerate(HOSTILE_LINES.values()):
        hostile_jsonl(corpus, bad.replace('"id": "h"', f'"id": "h{n}"'), name=f"f{n:02}.jsonl")
        # Each file holds the same good ids: give them their own.
        text = (corpus / f"f{n:02}.jsonl").read_text("utf-8", errors="surrogatepass")
        text = text.replace('"good-1"', f'"good-1-{n}"').replace('"good-2"', f'"good-2-{n}"')
        (corpus / f"f{n:02}.jsonl").write_text(text, "utf-8", errors="surrogatepass")
    runner = CliRunner()
    for command in ("build", "add", "sync"):
        index = tmp_path / f"index-{command}"
        result = runner.invoke(cli, [command, str(corpus), "--index", str(index)])
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.stderr
        for n, (_, reason) in enumerate(HOSTILE_LINES.values()):
            assert f"skipped f{n:02}.jsonl:2: " in result.stderr, (command, reason)
        assert len(stored_ids(index)) == 2 * len(HOSTILE_LINES)
        searcher = Searcher(index)
        try:
            assert searcher.search("向量数据库").total == len(HOSTILE_LINES)
        finally:
            searcher.close()


def test_100000_tags_build_in_seconds_not_a_minute(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    hostile_jsonl(corpus, HOSTILE_LINES["100,000 tags"][0])
    # A record at the limit is indexed with all its tags, deduplicated in linear time.
    many = [f"标签{i % MAX_TAGS}" for i in range(100_000)]
    (corpus / "ok.jsonl").write_text(line({"id": "ok", "title": "标签很多", "body": "正文", "tags": many}), "utf-8")
    started = time.perf_counter()
    stats = build_index([corpus], tmp_path / "index")
    assert time.perf_counter() - started < 20
    assert [s.origin for s in stats.skipped] == ["news.jsonl:2"]
    store = open_store(tmp_path / "index")
    try:
        article = store.get("ok")
    finally:
        store.close()
    assert article is not None and len(article.tags) == MAX_TAGS


@pytest.mark.parametrize("ident", [".".join(["a"] * 100_000), "-".join(["v1.2"] * 40_000), "_".join(["ab1"] * 50_000)])
def test_an_identifier_of_100000_pieces_is_indexed_in_seconds_not_minutes(tmp_path: Path, ident: str) -> None:
    # Finding each part's first piece by a scan made these quadratic: over 5 minutes for a.a.a… of 200 KB.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dots.jsonl").write_text(line({"id": "dots", "title": "点号", "body": ident}), "utf-8")
    started = time.perf_counter()
    stats = build_index([corpus], tmp_path / "index")
    assert time.perf_counter() - started < 30
    assert stats.indexed == 1 and not stats.skipped


BILLION_LAUGHS = """---
title: lol
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
categories: [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
---
正文
"""

# Markdown files and the reason each is skipped with.
HOSTILE_MARKDOWN: dict[str, tuple[str | bytes, str]] = {
    "laughs.md": (BILLION_LAUGHS, f"more than {MAX_FRONT_MATTER_VALUES:,} values"),
    "laughs-ignored-key.md": (BILLION_LAUGHS.replace("categories:", "author:"), "aliases"),
    "self-alias.md": ("---\ntags: &a [*a]\n---\n正文\n", "refers to a value that contains it"),
    "self-alias-map.md": ("---\nmeta: &m {again: *m}\ntitle: 题\n---\n正文\n", "refers to a value that contains it"),
    "scalar.md": ("---\njust a sentence\n---\n正文\n", "a single value, not a mapping"),
    "list.md": ("---\n- a\n- b\n---\n正文\n", "a list, not a mapping"),
    "deep.md": ("---\nx: " + "[" * 5_000 + "]" * 5_000 + "\n---\n正文\n", "invalid YAML front matter"),
    "deep-json.md": ("{\n" + '"x": ' + "[" * 200_000 + "]" * 200_000 + "\n}\n正文\n", "nested too deeply"),
    "tag-dict.md": ("---\ntags:\n  - {name: x}\n---\n正文\n", "a tag must be text, not dict"),
    "id-list.md": ("---\nid: [a, b]\n---\n正文\n", "field 'id' must be text or a whole number"),
    "flat-list.md": ("---\nx: [" + "a," * 2_000_000 + "a]\n---\n正文\n", "over the limit of 256 KB"),
    "bad-utf8.md": (b"---\ntitle: \xe6\xa0\x87\xff\xfe\n---\n" + "正文很长".encode() * 50, "not valid UTF-8"),
    "garbage.md": (bytes(range(256)) * 40, "binary file"),
}


def test_hostile_markdown_is_skipped_fast_and_the_rest_is_indexed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, (content, _) in HOSTILE_MARKDOWN.items():
        path = corpus / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (corpus / "ok.md").write_text("---\ntitle: 1984\ntags: [2024, yes]\n---\n向量数据库的正文。\n", "utf-8")
    started = time.perf_counter()
    stats = build_index([corpus], tmp_path / "index")
    assert time.perf_counter() - started < 30
    skipped = {s.origin: s.reason for s in stats.skipped}
    for name, (_, reason) in HOSTILE_MARKDOWN.items():
        assert reason in skipped.pop(name), (name, skipped.get(name))
    assert skipped == {}
    store = open_store(tmp_path / "index")
    try:
        ok = store.get("ok.md")
    finally:
        store.close()
    # Front matter is typed by hand: numbers and booleans stay as written.
    assert ok is not None and ok.title == "1984" and ok.tags == ("2024", "yes")


def test_a_csv_field_over_the_csv_limit_costs_only_its_row(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b"id,title,body\n1,t," + b"x" * 11_000_000 + b"\n2,\xe6\xa0\x87\xe9\xa2\x98,b2\n")
    records = list(iter_records([path]))
    assert [(r.origin, "field larger than field limit" in r.reason) for r in records if isinstance(r, Skipped)] == [
        ("export.csv:2", True)
    ]
    assert [r.id for r in records if not isinstance(r, Skipped)] == ["2"]


@pytest.mark.parametrize("value", ["2024-13-45", "2020-02-30", "0000-00-00", "2020-01-01T00:00:00+99:00"])
def test_an_impossible_date_in_front_matter_drops_only_the_date(tmp_path: Path, value: str) -> None:
    # YAML's own date reading raised on these, and the whole article was skipped.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text(f"---\ntitle: 日期\ndate: {value}\n---\n向量数据库的正文。\n", "utf-8")
    stats = build_index([corpus], tmp_path / "index")
    assert (stats.indexed, stats.skipped) == (1, [])
    assert [(where, value in warning) for where, warning in stats.warnings] == [("a.md", True)]


def test_an_impossible_date_drops_only_the_date(tmp_path: Path) -> None:
    hostile_jsonl(tmp_path / "c", line({"id": "d", "title": "日期", "body": "正文", "date": "99999-99-99"}))
    (tmp_path / "c" / "long.jsonl").write_text(line({"id": "e", "title": "t", "body": "b", "date": "2" * 10_000}))
    stats = build_index([tmp_path / "c"], tmp_path / "index")
    assert stats.skipped == [] and stats.indexed == 4
    assert sorted(origin for origin, _ in stats.warnings) == ["long.jsonl:1", "news.jsonl:2"]


def test_a_file_name_that_is_not_utf8_is_skipped_and_reported_printably(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.md").write_text("# 标题\n\n正文", "utf-8")
    with open(os.path.join(os.fsencode(corpus), b"bad\xff.md"), "wb") as f:
        f.write("# 标题\n\n正文".encode())
    result = CliRunner().invoke(cli, ["build", str(corpus), "--index", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    assert "skipped bad\\xff.md: the file name holds" in result.stderr
    assert stored_ids(tmp_path / "index") == {"ok.md"}


# -- files that are not regular files ---------------------------------------------


@pytest.fixture
def special_corpus(tmp_path: Path) -> Iterator[Path]:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.md").write_text("---\ntitle: 向量数据库\n---\n向量数据库的正文。\n", "utf-8")
    os.mkfifo(corpus / "b.md")
    os.mkfifo(corpus / "c.jsonl")
    sock = socket.socket(socket.AF_UNIX)
    # Relative: a socket's path may not be longer than about 100 bytes.
    cwd = os.getcwd()
    os.chdir(corpus)
    try:
        sock.bind("d.md")
    finally:
        os.chdir(cwd)
    (corpus / "e.jsonl").symlink_to("/dev/zero")
    (corpus / "f.md").symlink_to(corpus / "b.md")
    (corpus / "sub" / "loop").symlink_to("..")
    (corpus / "g.md").symlink_to("h.md")
    (corpus / "h.md").symlink_to("g.md")
    try:
        yield corpus
    finally:
        sock.close()


SPECIAL_SKIPS = {
    "b.md": "not a regular file (a named pipe)",
    "c.jsonl": "not a regular file (a named pipe)",
    "d.md": "not a regular file (a socket)",
    "e.jsonl": "not a regular file (a character device)",
    "f.md": "not a regular file (a named pipe)",
    "g.md": "cannot read file: Too many levels of symbolic links",
    "h.md": "cannot read file: Too many levels of symbolic links",
    "sub/loop/": "a link to a folder that is already being read (a loop, or a second link)",
}


def test_pipes_sockets_devices_and_link_loops_are_skipped_without_hanging(special_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    for command in ("build", "sync", "add"):
        # Not -q: counting records for the progress bar must not open a pipe either.
        result = run_cli(command, str(special_corpus), "--index", str(index), timeout=120)
        assert result.returncode == 0, result.stderr
        for name, reason in SPECIAL_SKIPS.items():
            assert f"skipped {name}: {reason}" in result.stderr, (command, name, result.stderr)
    assert stored_ids(index) == {"a.md"}


def test_a_file_swapped_for_a_pipe_after_listing_is_refused_not_waited_on(tmp_path: Path) -> None:
    from indexer.readers.formats import FormatOptions, NotRegularFileError, read_markdown

    os.mkfifo(tmp_path / "late.md")
    with pytest.raises(NotRegularFileError, match="a named pipe"):
        list(read_markdown(tmp_path / "late.md", FormatOptions()))


# -- sync decides by id ------------------------------------------------------------


def test_sync_keeps_a_temporarily_unreadable_record_when_lines_above_it_moved(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    news = corpus / "news.jsonl"
    rows = [{"id": f"n{i}", "title": f"新闻{i}", "body": f"第{i}条新闻的正文"} for i in range(1, 4)]
    news.write_text("".join(line(r) for r in rows), "utf-8")
    other = corpus / "other.jsonl"
    other.write_text(line({"id": "o1", "title": "另一条", "body": "正文"}) + line(GOOD), "utf-8")
    index = tmp_path / "index"
    build_index([corpus], index)

    # Two records inserted above; n2 (was line 2, now line 4) is broken JSON for now.
    new_rows = [{"id": "x1", "title": "插入", "body": "新插入的一条"}, {"id": "x2", "title": "又一条", "body": "正文"}]
    news.write_text("".join(line(r) for r in new_rows) + line(rows[0]) + '{"id": "n2", "title": \n' + line(rows[2]))
    stats = sync_index([corpus], index)
    assert stats.deleted == []
    assert [doc_id for doc_id, _ in stats.kept] == ["n2"]
    assert "n2" in stored_ids(index)

    # Readable JSON but an invalid record: its id is known, so exactly that document is kept,
    # and a record really removed from the same file (n3) is deleted.
    bad_n2 = {"id": "n2", "title": "新闻2", "body": ""}
    news.write_text("".join(line(r) for r in [*new_rows, rows[0], bad_n2]), "utf-8")
    # And a record that moved to a line where another stood is not confused with it.
    other.write_text(line(GOOD) + line({"id": "o1", "title": "另一条", "body": "正文"}), "utf-8")
    stats = sync_index([corpus], index)
    assert [doc_id for doc_id, _ in stats.kept] == ["n2"]
    assert [doc_id for doc_id, _ in stats.deleted] == ["n3"]
    assert stats.updated == []
    assert stored_ids(index) == {"x1", "x2", "n1", "n2", "o1", "good-1"}

    # Fixed: nothing to do for n2 (its content did not change); removed for real: deleted.
    news.write_text("".join(line(r) for r in [rows[1], *new_rows, rows[0]]), "utf-8")
    stats = sync_index([corpus], index)
    assert stats.kept == [] and stats.changes == 0
    news.write_text("".join(line(r) for r in [*new_rows, rows[0]]), "utf-8")
    stats = sync_index([corpus], index)
    assert [doc_id for doc_id, _ in stats.deleted] == ["n2"]


def test_sync_keeps_documents_of_a_folder_it_could_not_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "locked").mkdir(parents=True)
    (corpus / "locked" / "a.md").write_text("# 甲\n\n正文", "utf-8")
    (corpus / "b.md").write_text("# 乙\n\n正文", "utf-8")
    index = tmp_path / "index"
    build_index([corpus], index)
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> Iterator[Path]:
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    stats = sync_index([corpus], index)
    assert [(s.origin, s.reason) for s in stats.skipped] == [("locked/", "cannot read folder: Permission denied")]
    assert stats.deleted == [] and [doc_id for doc_id, _ in stats.kept] == ["locked/a.md"]


# -- a full disk and a read-only index ----------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so the disk-full and read-only tests must run (as root)")
    pytest.skip(reason)


def test_missing_mount_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="cannot mount"):
        _unavailable("cannot mount a tmpfs")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        _unavailable("cannot mount a tmpfs")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        _unavailable("cannot mount a tmpfs: no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        _unavailable(f"cannot mount a tmpfs: {done.stderr.strip() or 'mount failed'} (mounting needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def big_corpus(folder: Path, n: int = 300) -> Path:
    """About 2.7 MB of Chinese articles: more than the small disk holds once indexed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big.jsonl"
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            body = "".join(chars[(i * 7919 + k * 104729) % len(chars)] for k in range(3000))
            f.write(line({"id": f"big{i}", "title": f"文章{i}", "body": body}))
    return path


def fill(disk: Path, leave_kb: int) -> None:
    """Fill the disk until only ``leave_kb`` KB are free."""
    (disk / "filler").unlink(missing_ok=True)
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_kb * 1024))


def answers(index: Path) -> dict[str, list[str]]:
    searcher = Searcher(index)
    try:
        return {q: [h.id for h in searcher.search(q, size=20).hits] for q in ("数据库", "模型", "开源 芯片")}
    finally:
        searcher.close()


def files_of(index: Path) -> dict[str, list[str]]:
    """Every entry of the index directory and of its live generation."""
    live = (index / "CURRENT").resolve()
    return {".": sorted(os.listdir(index)), "live": sorted(os.listdir(live))}


def one_line_error(result: subprocess.CompletedProcess[str] | Result, reason: str) -> None:
    code = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    assert code == 1, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and reason in errors[0], result.stderr
    assert errors[0].startswith("Error: cannot write to the index at ") and "the index was not changed" in errors[0]
    assert "Traceback" not in result.stderr and "Process " not in result.stderr, result.stderr


@pytest.mark.parametrize("leave_kb", [0, 1200])
def test_a_full_disk_ends_build_and_add_with_one_line_and_leaves_no_debris(
    small_disk: Path, tmp_path: Path, leave_kb: int
) -> None:
    index = small_disk / "index"
    runner = CliRunner(env={"ZHSEARCH_BUILD_PROCS": "2"})
    assert runner.invoke(cli, ["build", str(MINI_CORPUS), "--index", str(index), "-q"]).exit_code == 0
    before, served = files_of(index), answers(index)
    corpus = big_corpus(tmp_path / "big")
    fill(small_disk, leave_kb)
    for command in ("build", "add", "sync"):
        result = runner.invoke(cli, [command, str(corpus), "--index", str(index), "-q"])
        one_line_error(result, "No space left on device")
        assert files_of(index) == before, command
        assert answers(index) == served
    # Space again: a build goes through, over the debris-free directory.
    (small_disk / "filler").unlink()
    assert runner.invoke(cli, ["build", str(MINI_CORPUS), "--index", str(index), "-q"]).exit_code == 0


def test_a_worker_process_that_dies_fails_the_build_cleanly(tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert run_cli("build", str(MINI_CORPUS), "--index", str(index), "-q").returncode == 0
    before, served = files_of(index), answers(index)
    corpus = big_corpus(tmp_path / "big", n=250)
    # Whoosh's workers used to die with a traceback, hang the build on a full job queue,
    # or have their documents silently left out of the index.
    boom = (
        "import errno, whoosh.multiproc as m\n"
        "def fail(self, *args): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "m.SubWriterTask._process_file = fail\n"
        "from indexer.cli import cli\n"
        f"cli(['build', {str(corpus)!r}, '--index', {str(index)!r}, '-q'])\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", boom],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={**os.environ, "ZHSEARCH_BUILD_PROCS": "2"},
    )
    one_line_error(result, "No space left on device")
    assert files_of(index) == before and answers(index) == served


def test_a_document_the_writer_cannot_take_stops_the_add_cleanly(tmp_path: Path) -> None:
    from indexer import Article

    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    before, served = files_of(index), answers(index)
    store = open_store(index)
    try:
        good = Article(id="ok", title="好", body="正文", origin="x.md", where="x.md")
        bad = Article(id="bad", title="坏\ud800", body="正文", origin="y.md", where="y.md")
        with pytest.raises(IndexWriteError, match=r"cannot index y\.md: UnicodeEncodeError"):
            store.add([good, bad])
    finally:
        store.close()
    assert files_of(index) == before and answers(index) == served


@pytest.fixture
def read_only_index(small_disk: Path) -> Iterator[Path]:
    index = small_disk / "index"
    assert run_cli("build", str(MINI_CORPUS), "--index", str(index), "-q").returncode == 0
    done = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True)
    if done.returncode != 0:
        _unavailable(f"cannot remount a tmpfs read-only: {done.stderr.strip()}")
    try:
        yield index
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], capture_output=True)


def test_a_read_only_index_refuses_writes_with_one_line_and_still_searches(
    read_only_index: Path, tmp_path: Path
) -> None:
    index = read_only_index
    before, served = files_of(index), answers(index)
    corpus = tmp_path / "c"
    hostile_jsonl(corpus, "")
    for args in (["build", str(corpus)], ["add", str(corpus)], ["sync", str(corpus)], ["delete", "rust.md"]):
        result = run_cli(*args, "--index", str(index))
        one_line_error(result, "Read-only file system")
    assert files_of(index) == before and answers(index) == served
    # Reading needs no write: a dry run and a search work on a read-only index.
    assert run_cli("sync", str(MINI_CORPUS), "--index", str(index), "--dry-run", "-q").returncode == 0
    assert run_cli("search", "数据库", "--index", str(index)).returncode == 0


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes through file permissions; the read-only mount test covers it"
)
def test_an_index_directory_without_write_permission_refuses_writes_with_one_line(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    for path in [index, (index / "CURRENT").resolve()]:
        path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = run_cli("add", str(MINI_CORPUS), "--index", str(index))
        one_line_error(result, "Permission denied")
    finally:
        for path in [index, (index / "CURRENT").resolve()]:
            path.chmod(stat.S_IRWXU)


def test_a_json_array_element_python_cannot_hold_costs_only_itself(tmp_path: Path) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    text = (
        "[\n"
        + line({"id": "a", "title": "甲", "body": "正文"}).strip()
        + ",\n"
        + deep
        + ",\n"
        + '{"id": "b", "title": "乙", "body": "正文 \\"]}", "n": '
        + "9" * 5_000
        + "},\n"
        + line({"id": "c", "title": "丙", "body": '正文 "]},'}).strip()
        + "\n]"
    )
    (tmp_path / "export.json").write_text(text, "utf-8")
    records = list(iter_records([tmp_path / "export.json"]))
    assert [(r.origin, r.reason.split(" (")[0]) for r in records if isinstance(r, Skipped)] == [
        ("export.json:3", "invalid JSON: nested too deeply"),
        ("export.json:4", "invalid JSON: Exceeds the limit"),
    ]
    assert [r.id for r in records if not isinstance(r, Skipped)] == ["a", "c"]


@pytest.mark.parametrize(
    "bad", [pytest.param("[" * 200_000 + "]" * 200_000, id="nested"), pytest.param("9" * 5_000, id="long-number")]
)
def test_in_a_json_object_holding_the_records_a_bad_one_costs_only_itself(tmp_path: Path, bad: str) -> None:
    # The records under a key, as many exports write them: the object was read whole, so one element
    # Python cannot hold lost the file.
    good = [line({"id": i, "title": t, "body": "正文"}).strip() for i, t in (("a", "甲"), ("c", "丙"))]
    text = '{"meta": {"n": 3},\n"articles": [\n' + good[0] + ',\n{"id": "b", "x": ' + bad + "},\n" + good[1] + "\n]}"
    (tmp_path / "export.json").write_text(text, "utf-8")
    records = list(iter_records([tmp_path / "export.json"]))
    assert [r.origin for r in records if isinstance(r, Skipped)] == ["export.json:4"]
    assert [r.id for r in records if not isinstance(r, Skipped)] == ["a", "c"]


def test_a_repeated_key_counts_once_as_in_json(tmp_path: Path) -> None:
    text = '{"articles": 5, "articles": [{"title": "甲", "body": "正文"}]}'
    (tmp_path / "export.json").write_text(text, "utf-8")
    assert [r.title for r in iter_records([tmp_path / "export.json"]) if not isinstance(r, Skipped)] == ["甲"]


def test_records_of_a_json_array_on_one_line_each_get_an_id(tmp_path: Path) -> None:
    # A minified export: every record starts on line 1, and file:line alone made them one id.
    rows = [{"title": t, "body": "正文"} for t in "甲乙丙"] + ["not a record"]
    (tmp_path / "min.json").write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
    records = list(iter_records([tmp_path / "min.json"]))
    assert [r.id for r in records if not isinstance(r, Skipped)] == ["min.json:1", "min.json:1#2", "min.json:1#3"]
    assert [r.origin for r in records if isinstance(r, Skipped)] == ["min.json:1#4"]
    stats = build_index([tmp_path / "min.json"], tmp_path / "index")
    assert stats.indexed == 3


@pytest.mark.parametrize("suffix", [".toc", ".trm", ".pst"])
def test_a_damaged_index_is_named_in_one_line_with_the_fix(tmp_path: Path, suffix: str) -> None:
    # One file of the live generation cut to nothing (a crash, a full disk, a copy cut short): Whoosh's
    # own TypeError, FileFormatError or CorruptIndexError used to reach the user as a traceback.
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    victim = sorted((index / "CURRENT").resolve().glob(f"*{suffix}"))[0]
    victim.write_bytes(b"")
    for args in (["search", "大模型"], ["delete", "moe-intro"], ["sync", str(MINI_CORPUS)], ["info"]):
        result = run_cli(*args, "--index", str(index), timeout=120)
        if suffix == ".pst" and args[0] in ("info", "sync"):
            continue  # they read no postings
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
        assert len(errors) == 1 and f"the index at {index} is damaged" in errors[0], result.stderr
        assert "rebuild it with `zhsearch build PATH...`" in errors[0]


def test_a_csv_quote_never_closed_costs_only_its_row(tmp_path: Path) -> None:
    # The rest of the file became one field: the rows after it were lost, and not even counted.
    path = tmp_path / "x.csv"
    path.write_text('id,title,body\nc1,一,正文一\nc2,二,"未闭合的引号\nc3,三,正文三\nc4,四,正文四\n', "utf-8")
    records = list(iter_records([path]))
    assert [(r.origin, r.reason) for r in records if isinstance(r, Skipped)] == [
        ("x.csv:3", "invalid CSV: a quote opened in this row is never closed")
    ]
    assert [(r.id, r.body) for r in records if not isinstance(r, Skipped)] == [
        ("c1", "正文一"),
        ("c3", "正文三"),
        ("c4", "正文四"),
    ]


GOOD_UTF8_LINES = [
    line({"id": "a", "title": "英文", "body": "database record one"}).encode(),
    line({"id": "u", "title": "数据", "body": "好的记录"}).encode(),
]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(b'{"id": "x", "title": "t", "body": "nul\x00"}\n', "Invalid control character", id="nul"),
        pytest.param(b'{"id": "x", "title": "t", "body": "\xff\xfe"}\n', "not valid UTF-8", id="stray-bytes"),
        pytest.param(
            line({"id": "x", "title": "标题", "body": "中文内容的文章正文" * 30}).encode("gbk"),
            "not valid UTF-8",
            id="gbk",
        ),
    ],
)
def test_one_line_in_another_encoding_costs_only_itself_in_json_lines(tmp_path: Path, bad: bytes, reason: str) -> None:
    # The file was refused whole as binary or as an unknown encoding, or decoded whole as GB18030, which
    # garbled every good line without a word (数据 indexed as 鏁版嵁).
    path = tmp_path / "x.jsonl"
    path.write_bytes(GOOD_UTF8_LINES[0] + bad + GOOD_UTF8_LINES[1])
    records = list(iter_records([path]))
    assert [(r.origin, reason in r.reason) for r in records if isinstance(r, Skipped)] == [("x.jsonl:2", True)]
    assert [(r.id, r.title) for r in records if not isinstance(r, Skipped)] == [("a", "英文"), ("u", "数据")]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(b"c2,t,nul\x00\n", "holds a NUL character"), (b"c2,t,\xff\xfe\n", "not valid UTF-8 text")],
    ids=["nul", "stray-bytes"],
)
def test_one_row_in_another_encoding_costs_only_itself_in_csv(tmp_path: Path, bad: bytes, reason: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("id,title,body\nc1,标题一,好记录一\n".encode() + bad + "c3,标题三,第三条\n".encode())
    records = list(iter_records([path]))
    assert [(r.origin, reason in r.reason) for r in records if isinstance(r, Skipped)] == [("x.csv:3", True)]
    assert [r.id for r in records if not isinstance(r, Skipped)] == ["c1", "c3"]


def test_a_gbk_json_lines_file_of_mostly_ascii_lines_is_still_read_as_gbk(tmp_path: Path) -> None:
    rows = [{"id": f"e{i}", "title": "English", "body": "plain ascii text"} for i in range(20)]
    rows.append({"id": "zh", "title": "中文标题", "body": "这是用国标码写的正文"})
    path = tmp_path / "gbk.jsonl"
    path.write_bytes("".join(line(r) for r in rows).encode("gbk"))
    records = list(iter_records([path]))
    assert not [r for r in records if isinstance(r, Skipped)]
    assert [r.title for r in records if not isinstance(r, Skipped) and r.id == "zh"] == ["中文标题"]


def test_html_pages_too_large_for_the_extractor_cost_seconds_not_minutes(tmp_path: Path) -> None:
    # 300,000 attributes on one tag hung the build (libxml2 compares each with the others); 200,000
    # paragraphs took trafilatura 95 s.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    attrs = " ".join(f'a{i}="x"' for i in range(300_000))
    (corpus / "attrs.html").write_text(f"<html><body><p {attrs}>文章正文内容。</p></body></html>", "utf-8")
    paragraphs = "".join(f"<p>第{i}段的正文内容。</p>" for i in range(200_000))
    page = f"<html><head><title>长页</title></head><body>{paragraphs}</body></html>"
    (corpus / "long.html").write_text(page, "utf-8")
    started = time.perf_counter()
    stats = build_index([corpus], tmp_path / "index")
    assert time.perf_counter() - started < 60
    assert [(s.origin, "300,000 attributes" in s.reason) for s in stats.skipped] == [("attrs.html", True)]
    assert [(w, "elements, over the 20,000" in m) for w, m in stats.warnings] == [("long.html", True)]
    searcher = Searcher(tmp_path / "index")
    try:
        page = searcher.search("第199999段")
        assert [h.title for h in page.hits] == ["长页"]
    finally:
        searcher.close()
