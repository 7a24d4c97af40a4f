"""The build's writer (``FastSegmentWriter``) writes exactly the files Whoosh's own writer writes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from whoosh import formats
from whoosh import index as whoosh_index
from whoosh.writing import SegmentWriter

from indexer import build_index
from indexer.backends.whoosh import store
from indexer.backends.whoosh.schema import build_schema
from indexer.backends.whoosh.writer import FastSegmentWriter, encode_positions
from indexer.corpus import Article, iter_records

from .conftest import MINI_CORPUS
from .random_docs import write_random_docs

# Edge cases for the one-pass analysis of title and content.
_EDGES = [
    Article(id="empty-body", title="只有标题 v2.7.4", body=""),
    Article(id="empty-title", title="", body="正文没有标题。GPT-4o 和 ERNIE-4.5-VL-28B-A3B"),
    Article(id="title-ends-in-a-dot", title="发布 Python3.12.", body=".NET 与 C++ 和 C#"),
    Article(id="repeats", title="哈哈哈哈哈", body="哈哈哈哈哈哈哈 中华人民共和国中华人民共和国 " * 40),
    Article(id="traditional", title="軟體開發", body="ＥＲＮＩＥ　４．５ 台積電 網路 軟體開發"),
    Article(id="ascii-title", title="Kubernetes 1.30 Release", body="边车容器进入稳定阶段，iPhone15 和 5G。"),
]


def _documents(tmp_path: Path) -> list[dict[str, Any]]:
    """Field values as the store hands them over: the mini corpus, 400 random documents and the edge cases."""
    random_docs = write_random_docs(tmp_path / "random.jsonl", 400, seed=18, with_meta=True)
    articles = [r for r in iter_records([str(MINI_CORPUS), str(random_docs)]) if isinstance(r, Article)]
    docs = [store._fields(a) for a in articles + _EDGES]
    # A title that does not start the content is analysed on its own.
    odd = store._fields(Article(id="odd", title="标题不在正文里", body="正文"))
    odd["content"] = "另外一段内容，开源模型"
    return docs + [odd]


def _write(
    writer_class: type, docs: list[dict[str, Any]], path: Path, pool_bytes: int | None = None
) -> dict[str, bytes]:
    """Write ``docs`` into a new index with one writer; return its segment's files by name after the segment id."""
    path.mkdir()
    ix = whoosh_index.create_in(str(path), build_schema())
    writer = writer_class(ix, limitmb=store.WRITER_LIMIT_MB, compound=False)
    if pool_bytes is not None:
        writer.pool.limit = pool_bytes
    for fields in docs:
        writer.add_document(**fields)
    writer.commit()
    (segment,) = ix._segments()
    prefix = segment.segment_id()
    ix.close()
    files = {p.name[len(prefix) :]: p.read_bytes() for p in path.iterdir() if p.name.startswith(prefix)}
    assert {".pst", ".trm", "._stored.col", "._content_len.col"} <= set(files)
    return files


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _documents(tmp_path_factory.mktemp("docs"))


@pytest.fixture(scope="module")
def whoosh_files(documents: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return _write(SegmentWriter, documents, tmp_path_factory.mktemp("whoosh") / "index")


def test_the_build_writer_writes_the_same_files_as_whoosh(
    documents: list[dict[str, Any]], whoosh_files: dict[str, bytes], tmp_path: Path
) -> None:
    files = _write(FastSegmentWriter, documents, tmp_path / "index")
    assert files.keys() == whoosh_files.keys()
    for name, content in whoosh_files.items():
        assert files[name] == content, name


def test_a_pool_spilled_to_many_runs_writes_the_same_files(
    documents: list[dict[str, Any]], whoosh_files: dict[str, bytes], tmp_path: Path
) -> None:
    index = tmp_path / "index"
    files = _write(FastSegmentWriter, documents, index, pool_bytes=200_000)
    assert files == whoosh_files
    assert not list(index.rglob("*.run")), "the run files are removed"


def test_positions_are_encoded_as_whoosh_encodes_them() -> None:
    rnd = random.Random(18)
    positions = formats.Positions()
    cases = [[0], [5], [300], [70000], [3, 3, 3], list(range(0, 3000, 2))]
    cases += [sorted(rnd.choices(range(5000), k=rnd.randint(1, 40))) for _ in range(200)]
    for poslist in cases:
        assert encode_positions(poslist) == positions.encode(poslist)


def test_two_writer_processes_index_every_term_of_every_document(tmp_path: Path, monkeypatch: Any) -> None:
    """A build with two worker processes holds, term by term, the documents a one-process build holds."""
    corpus = write_random_docs(tmp_path / "random.jsonl", 600, seed=7, with_meta=True)
    postings = {}
    for procs in ("1", "2"):
        monkeypatch.setenv(store.BUILD_PROCS_ENV, procs)
        index = tmp_path / f"index-{procs}"
        stats = build_index([MINI_CORPUS, corpus], index)
        assert stats.indexed == stats.read > 600
        ix = whoosh_index.open_dir(str(index / store.CURRENT))
        with ix.searcher() as searcher:
            reader = searcher.reader()
            ids = {docnum: fields["id"] for docnum, fields in reader.iter_docs()}
            postings[procs] = {
                (field, term): sorted(ids[d] for d in reader.postings(field, term).all_ids())
                for field, term in reader.all_terms()
            }
            lengths = {ids[d]: reader.doc_field_length(d, "content") for d in ids}
        ix.close()
        postings[procs + "-lengths"] = lengths  # type: ignore[assignment]
    assert postings["1"] == postings["2"]
    assert postings["1-lengths"] == postings["2-lengths"]
