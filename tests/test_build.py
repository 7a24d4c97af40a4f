"""Building and updating: accounting, atomic swap, add/replace/delete, format checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from indexer import (
    SCHEMA_VERSION,
    IndexDirError,
    IndexMissingError,
    SchemaMismatchError,
    Searcher,
    add_documents,
    build_index,
    delete_documents,
)
from indexer.build import NothingReadError, StrictError
from indexer.corpus import ReadOptions

from .conftest import MINI_CORPUS


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_build_accounts_for_every_record(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "title": "甲", "body": "第一篇"},
            {"id": "a", "title": "甲二", "body": "重复的编号"},
            {"id": "b", "title": "乙"},
        ],
    )
    stats = build_index([src], tmp_path / "index")
    assert (stats.read, stats.indexed, len(stats.skipped)) == (3, 1, 2)
    reasons = [s.reason for s in stats.skipped]
    assert reasons[0] == "duplicate id 'a' (first seen at in.jsonl:1)"
    assert reasons[1] == "missing or empty body"
    assert stats.skip_reasons() == {"duplicate id": 1, "missing or empty body": 1}
    # The first record with an id wins.
    s = Searcher(tmp_path / "index")
    doc = s.get("a")
    s.close()
    assert doc is not None and doc.title == "甲"


def test_rebuild_swaps_atomically_and_keeps_one_previous_generation(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    searcher = Searcher(index)
    assert searcher.search("飞桨").total == 1
    first_gen = os.readlink(index / "CURRENT")
    src = write_jsonl(tmp_path / "new.jsonl", [{"id": "n", "title": "全新", "body": "只有一篇飞桨文章"}])
    build_index([src], index)
    assert os.readlink(index / "CURRENT") != first_gen
    # An open searcher follows the swap on its next query.
    page = searcher.search("飞桨")
    assert [h.id for h in page.hits] == ["n"]
    build_index([src], index)
    gens = sorted(p.name for p in index.iterdir() if p.name.startswith("gen-"))
    assert len(gens) == 2 and first_gen not in gens
    searcher.close()


def test_failed_build_leaves_the_live_index_untouched(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    live = os.readlink(index / "CURRENT")

    def explode(_record: object) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        build_index([MINI_CORPUS], index, progress=explode)
    assert os.readlink(index / "CURRENT") == live
    assert not [p for p in index.iterdir() if p.name.startswith("tmp-")]
    s = Searcher(index)
    assert s.search("飞桨").total == 1
    s.close()


def test_add_replaces_by_id_and_delete_removes(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    src = write_jsonl(
        tmp_path / "more.jsonl",
        [
            {"id": "k8s", "title": "Kubernetes 1.32 发布", "body": "新版本带来调度改进"},
            {"id": "new", "title": "量子计算新进展", "body": "超导量子比特"},
        ],
    )
    stats = add_documents([src], index)
    assert stats.indexed == 2
    s = Searcher(index)
    assert s.info().documents == 9
    k8s = s.get("k8s")
    assert k8s is not None and k8s.title == "Kubernetes 1.32 发布"
    assert s.search("量子").hits[0].id == "new"
    deleted, missing = delete_documents(["new", "nope"], index)
    assert (deleted, missing) == (["new"], ["nope"])
    assert s.search("量子").total == 0
    assert s.info().documents == 8
    s.close()


def test_add_creates_an_index_when_none_exists(tmp_path: Path) -> None:
    add_documents([MINI_CORPUS / "notes"], tmp_path / "index")
    s = Searcher(tmp_path / "index")
    assert s.info().documents == 1
    s.close()


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="zhsearch build"):
        Searcher(tmp_path / "none").search("飞桨")


def test_schema_mismatch_is_refused_with_a_fix(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS / "notes"], index)
    meta_path = index / "CURRENT" / "zhsearch.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["schema_version"] = "0.0"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(SchemaMismatchError, match=r"format 0\.0.*zhsearch build"):
        Searcher(index).info()


def test_refuses_to_write_into_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(IndexDirError, match="not a zhsearch index directory"):
        build_index([MINI_CORPUS], tmp_path)
    assert (tmp_path / "precious.txt").read_text(encoding="utf-8") == "keep me"


def test_info_reports_the_index(index_dir: Path) -> None:
    s = Searcher(index_dir)
    info = s.info()
    s.close()
    assert info.documents == 8
    assert info.size_bytes > 0
    assert info.schema_version == SCHEMA_VERSION
    assert info.built_at is not None
    assert info.sources == [str(MINI_CORPUS.resolve())]


@pytest.mark.parametrize("what", ["an empty folder", "nothing readable"])
def test_a_build_that_reads_no_article_leaves_the_live_index(tmp_path: Path, what: str) -> None:
    # It exited 0 and put an empty index live: every document was gone.
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    live = os.readlink(index / "CURRENT")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if what == "nothing readable":
        write_jsonl(corpus / "bad.jsonl", [{"id": "y", "title": "缺正文"}])
    with pytest.raises(NothingReadError, match="no article could be read .*the index was not changed"):
        build_index([corpus], index)
    assert os.readlink(index / "CURRENT") == live
    assert not [p for p in index.iterdir() if p.name.startswith("tmp-")]
    s = Searcher(index)
    assert s.info().documents == 8
    s.close()


def test_strict_build_leaves_the_live_index_untouched(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    live = os.readlink(index / "CURRENT")
    src = write_jsonl(
        tmp_path / "in.jsonl", [{"id": "x", "title": "新", "body": "正文"}, {"id": "y", "title": "缺正文"}]
    )
    with pytest.raises(StrictError, match="1 record was skipped and --strict is set; the index was not changed"):
        build_index([src], index, strict=True)
    assert os.readlink(index / "CURRENT") == live
    assert not [p for p in index.iterdir() if p.name.startswith("tmp-")]
    s = Searcher(index)
    assert s.info().documents == 8
    s.close()
    # Without --strict the same input builds, and the summary names the skip.
    stats = build_index([src], index)
    assert (stats.read, stats.indexed, stats.skip_reasons()) == (2, 1, {"missing or empty body": 1})


def test_strict_add_writes_nothing(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "title": "新", "body": "正文"}, {"id": "x", "title": "重复"}])
    with pytest.raises(StrictError):
        add_documents([src], index, strict=True)
    s = Searcher(index)
    assert s.get("x") is None
    s.close()


def test_summary_counts_files_left_out_by_filters(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.md").write_text("# 甲\n\n正文", encoding="utf-8")
    (tmp_path / "c" / "b.txt").write_text("乙\n正文", encoding="utf-8")
    stats = build_index([tmp_path / "c"], tmp_path / "index", options=ReadOptions(include=("*.md",)))
    assert (stats.indexed, stats.excluded) == (1, ["b.txt"])
    assert stats.summary().endswith("; 1 files left out by --include/--exclude")
