"""Incremental sync on real indexes: adds, updates, deletes, idempotence, scoping, dry runs, strictness."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from indexer import Article, Searcher, build_index, open_store
from indexer.build import StrictError
from indexer.corpus import ReadOptions
from indexer.sync import SyncStats, sync_index


def post(folder: Path, name: str, title: str, body: str, doc_id: str | None = None) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    front = f"id: {doc_id}\n" if doc_id else ""
    path.write_text(f"---\n{front}title: {title}\n---\n{body}", encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def manifest(index: Path) -> dict[str, tuple[str, str]]:
    store = open_store(index)
    try:
        return store.manifest()
    finally:
        store.close()


def snapshot(index: Path) -> dict[str, int]:
    """Every file of the live index generation with its modification time: unchanged means nothing was written."""
    gen = (index / "CURRENT").resolve()
    return {p.name: p.stat().st_mtime_ns for p in gen.iterdir()}


def ids(items: list[tuple[str, str]]) -> list[str]:
    return sorted(i for i, _ in items)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    post(folder, "a.md", "甲", "第一篇讲飞桨。")
    post(folder, "b.md", "乙", "第二篇讲量子计算。")
    post(folder, "posts/c.md", "丙", "第三篇讲芯片。", doc_id="c-id")
    jsonl(
        folder / "news.jsonl",
        [{"id": "n1", "title": "新闻一", "body": "数据库新版本"}, {"id": "n2", "title": "新闻二", "body": "容器编排"}],
    )
    return folder


def test_first_sync_creates_the_index_and_the_second_changes_nothing(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    first = sync_index([corpus], index)
    assert ids(first.added) == ["a.md", "b.md", "c-id", "n1", "n2"]
    assert (first.updated, first.deleted, first.unchanged) == ([], [], 0)
    before = snapshot(index)
    second = sync_index([corpus], index)
    assert second.changes == 0 and second.unchanged == 5 and second.read == 5
    assert snapshot(index) == before


def test_sync_adds_updates_and_deletes(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    build_index([corpus], index)
    post(corpus, "a.md", "甲", "第一篇改讲大模型。")
    post(corpus, "d.md", "丁", "第四篇讲机器人。")
    (corpus / "b.md").unlink()
    jsonl(corpus / "news.jsonl", [{"id": "n1", "title": "新闻一", "body": "数据库新版本"}])
    stats = sync_index([corpus], index)
    assert ids(stats.added) == ["d.md"]
    assert ids(stats.updated) == ["a.md"]
    assert ids(stats.deleted) == ["b.md", "n2"]
    assert stats.unchanged == 2
    s = Searcher(index)
    try:
        assert s.info().documents == 4
        assert [h.id for h in s.search("大模型").hits] == ["a.md"]
        assert s.search("飞桨").total == 0
        assert s.search("量子").total == 0
    finally:
        s.close()
    assert sync_index([corpus], index).changes == 0


def test_moved_lines_and_moved_files_with_ids(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    build_index([corpus], index)
    # A line inserted above records with ids moves them, but they did not change.
    jsonl(
        corpus / "news.jsonl",
        [
            {"id": "n0", "title": "新闻零", "body": "新插入"},
            {"id": "n1", "title": "新闻一", "body": "数据库新版本"},
            {"id": "n2", "title": "新闻二", "body": "容器编排"},
        ],
    )
    # A file with an id moved to another folder is the same document, from a new file.
    (corpus / "posts" / "c.md").rename(corpus / "c.md")
    stats = sync_index([corpus], index)
    assert ids(stats.added) == ["n0"]
    assert ids(stats.updated) == ["c-id"]
    assert stats.deleted == []
    assert manifest(index)["c-id"][0] == str((corpus / "c.md").resolve())


def test_dry_run_reports_the_same_plan_and_writes_nothing(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    build_index([corpus], index)
    post(corpus, "a.md", "甲", "改过的正文。")
    (corpus / "b.md").unlink()
    post(corpus, "e.md", "戊", "新文章。")
    before_files, before_manifest = snapshot(index), manifest(index)
    plan = sync_index([corpus], index, dry_run=True)
    assert (ids(plan.added), ids(plan.updated), ids(plan.deleted)) == (["e.md"], ["a.md"], ["b.md"])
    assert "would add 1, update 1, delete 1" in plan.summary()
    assert snapshot(index) == before_files and manifest(index) == before_manifest
    done = sync_index([corpus], index)
    assert (ids(done.added), ids(done.updated), ids(done.deleted)) == (["e.md"], ["a.md"], ["b.md"])


def test_only_documents_from_the_synced_paths_are_deleted(tmp_path: Path, corpus: Path) -> None:
    other = tmp_path / "other"
    post(other, "x.md", "外", "另一个文件夹的文章。")
    post(other, "y.md", "外二", "另一个文件夹的第二篇。")
    index = tmp_path / "index"
    build_index([corpus, other], index)
    (other / "y.md").unlink()
    # Syncing corpus/ alone must not touch other/, even though other/y.md is gone.
    stats = sync_index([corpus], index)
    assert stats.changes == 0
    assert "y.md" in manifest(index)
    # Syncing other/ removes it.
    assert ids(sync_index([other], index).deleted) == ["y.md"]


def test_a_folder_whose_name_extends_another_is_not_inside_it(tmp_path: Path) -> None:
    short, longer = tmp_path / "docs", tmp_path / "docs-old"
    post(short, "a.md", "甲", "正文甲", doc_id="a")
    post(longer, "b.md", "乙", "正文乙", doc_id="b")
    index = tmp_path / "index"
    build_index([short, longer], index)
    assert sync_index([short], index).deleted == []
    assert set(manifest(index)) == {"a", "b"}


def test_syncing_one_file_scopes_deletions_to_that_file(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    build_index([corpus], index)
    (corpus / "a.md").unlink()
    jsonl(corpus / "news.jsonl", [{"id": "n2", "title": "新闻二", "body": "容器编排"}])
    stats = sync_index([corpus / "news.jsonl"], index)
    assert ids(stats.deleted) == ["n1"]
    assert "a.md" in manifest(index)


def test_filters_limit_what_a_sync_may_delete(tmp_path: Path, corpus: Path) -> None:
    post(corpus, "drafts/z.md", "草稿", "还没写完。")
    index = tmp_path / "index"
    build_index([corpus], index)
    options = ReadOptions(include=("*.md",), exclude=("drafts/**",))
    (corpus / "news.jsonl").unlink()
    stats = sync_index([corpus], index, options=options)
    # news.jsonl is not *.md and drafts/ is excluded: neither is this sync's to delete.
    assert stats.changes == 0
    assert {"n1", "n2", "drafts/z.md"} <= set(manifest(index))
    assert sorted(stats.excluded) == ["drafts/z.md"]


def test_documents_of_unreadable_files_are_kept(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    build_index([corpus], index)
    (corpus / "b.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (corpus / "news.jsonl").write_text('{"id": "n1", "title": "新闻一", "body": "数据库新版本"}\n{oops\n', "utf-8")
    stats = sync_index([corpus], index)
    assert stats.deleted == []
    assert ids(stats.kept) == ["b.md", "n2"]
    assert [s.reason for s in stats.skipped] == [
        "binary file (PNG image)",
        "invalid JSON: Expecting property name enclosed in double quotes (column 2)",
    ]
    assert {"b.md", "n2"} <= set(manifest(index))


def test_strict_sync_writes_nothing_when_a_record_is_skipped(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    build_index([corpus], index)
    post(corpus, "new.md", "新", "新文章。")
    (corpus / "a.md").unlink()
    (corpus / "bad.jsonl").write_text("{oops\n", encoding="utf-8")
    before = manifest(index)
    with pytest.raises(StrictError, match="1 record was skipped and --strict is set") as caught:
        sync_index([corpus], index, strict=True)
    stats = caught.value.stats
    assert isinstance(stats, SyncStats) and stats.added == [] and len(stats.skipped) == 1
    assert manifest(index) == before


def test_documents_indexed_with_old_relative_origins_are_updated_not_deleted(tmp_path: Path, corpus: Path) -> None:
    index = tmp_path / "index"
    store = open_store(index)
    try:
        store.add([Article(id="a.md", title="甲", body="第一篇讲飞桨。", origin="a.md")])
        store.add([Article(id="legacy", title="旧", body="旧文章", origin="gone.md")])
    finally:
        store.close()
    stats = sync_index([corpus], index)
    assert "a.md" in ids(stats.updated)
    assert stats.deleted == [] and "legacy" in manifest(index)
    assert manifest(index)["a.md"][0] == str((corpus / "a.md").resolve())


@pytest.mark.parametrize("what", ["a named pipe", "a symlink loop"])
def test_documents_of_a_folder_replaced_by_something_unreadable_are_kept(tmp_path: Path, what: str) -> None:
    # The folder's name was skipped as a file without a suffix, and the documents inside it deleted.
    corpus = tmp_path / "corpus"
    post(corpus / "sub", "a.md", "子", "子目录里的文章。", doc_id="m1")
    post(corpus, "b.md", "乙", "第二篇。")
    index = tmp_path / "index"
    build_index([corpus], index)
    (corpus / "sub" / "a.md").unlink()
    (corpus / "sub").rmdir()
    if what == "a named pipe":
        os.mkfifo(corpus / "sub")
    else:
        (corpus / "sub").symlink_to("sub")
    stats = sync_index([corpus], index)
    assert stats.deleted == []
    assert stats.kept == [("m1", "its folder sub/ could not be read this time")]
    assert set(manifest(index)) == {"m1", "b.md"}
