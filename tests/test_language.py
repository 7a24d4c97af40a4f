"""Search that understands Chinese text: script folding, identifiers, synonyms, questions, filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from indexer import Searcher, build_index

DOCS = [
    {
        "id": "trad",
        "title": "台積電先進製程",
        "body": "台積電宣布2奈米製程進入量產，晶圓代工產能吃緊。",
        "date": "2025-04-01",
        "source": "芯闻社",
        "tags": ["半导体"],
    },
    {
        "id": "simp",
        "title": "国产数据库发布新版本",
        "body": "这款数据库支持向量检索，适合企业知识库。",
        "date": "2024-03-05",
        "source": "开源观察",
        "tags": ["数据库"],
    },
    {
        "id": "paddle",
        "title": "飞桨框架升级",
        "body": "飞桨框架带来新的自动并行能力。",
        "date": "2025-01-20",
        "source": "开源观察",
        "tags": ["框架", "大模型"],
    },
    {
        "id": "llm",
        "title": "LLM 推理成本下降",
        "body": "新的 LLM 服务把推理成本降低了一半。",
        "date": "2023-11-11",
        "source": "极客日报",
        "tags": ["大模型"],
    },
    {
        "id": "ids",
        "title": "版本号大全",
        "body": "Qwen2.5-VL-32B 与 ERNIE-4.5-VL-28B-A3B 同台，GPT-4o 也在列；"
        "C++、C#、.NET、Node.js、iPhone15、5G 基站、47B 参数、Whoosh v2.7.4。",
        "date": "2025-06-01",
        "source": "极客日报",
        "tags": ["版本"],
    },
    {
        "id": "py",
        "title": "Python 3 的新特性",
        "body": "Python 3 带来了更快的解释器。",
        "date": "2024-10-01",
        "source": "开发者周报",
        "tags": ["Python"],
    },
    {
        "id": "py3",
        "title": "升级到Python3",
        "body": "老项目迁移到Python3需要注意编码。",
        "date": "2022-10-01",
        "source": "开发者周报",
        "tags": ["Python"],
    },
    {
        "id": "question",
        "title": "武则天的扮演者",
        "body": "这部电视剧中，范冰冰饰演了青年和中年时期的武则天。",
        "date": "2015-01-01",
        "source": "娱乐周刊",
        "tags": ["电视剧"],
    },
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lang")
    src = root / "docs.jsonl"
    src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DOCS), encoding="utf-8")
    out = root / "index"
    build_index([src], out)
    return out


@pytest.fixture(scope="module")
def searcher(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    synonyms = tmp_path_factory.mktemp("syn") / "synonyms.txt"
    synonyms.write_text("# 同义词\n飞桨, PaddlePaddle\n大模型, LLM\n", encoding="utf-8")
    s = Searcher(index, synonyms=synonyms)
    yield s
    s.close()


def ids(searcher: Searcher, q: str, **kwargs: object) -> list[str]:
    """The full matches (a short page continues with articles that lack some words; not these)."""
    return [h.id for h in searcher.search(q, size=20, **kwargs).hits if not h.missing]  # type: ignore[arg-type]


def test_simplified_query_finds_traditional_text(searcher: Searcher) -> None:
    page = searcher.search("台积电 制程")
    assert [h.id for h in page.hits] == ["trad"]
    # Highlighting marks the original traditional characters.
    assert "<mark>台積電</mark>" in page.hits[0].title_html


def test_traditional_query_finds_simplified_text(searcher: Searcher) -> None:
    page = searcher.search("國產數據庫")
    assert [h.id for h in page.hits] == ["simp"]
    assert "<mark>国产数据库</mark>" in page.hits[0].title_html


@pytest.mark.parametrize(
    ("query", "marked"),
    [
        ("Qwen2.5-VL-32B", "Qwen2.5-VL-32B"),
        ("qwen2.5", "Qwen2.5"),
        ("ERNIE-4.5-VL-28B-A3B", "ERNIE-4.5-VL-28B-A3B"),
        ("A3B", "A3B"),
        ("GPT-4o", "GPT-4o"),
        ("C++", "C++"),
        ("C#", "C#"),
        (".NET", ".NET"),
        ("Node.js", "Node.js"),
        ("iPhone15", "iPhone15"),
        ("5G", "5G"),
        ("47B", "47B"),
        ("v2.7.4", "v2.7.4"),
    ],
)
def test_identifiers_are_found_and_highlighted_whole(searcher: Searcher, query: str, marked: str) -> None:
    page = searcher.search(query)
    assert [h.id for h in page.hits] == ["ids"]
    assert f"<mark>{marked}</mark>" in page.hits[0].snippet_html


def test_python3_and_python_3_find_each_other(searcher: Searcher) -> None:
    assert set(ids(searcher, "Python 3")) == {"py", "py3"}
    assert set(ids(searcher, "Python3")) == {"py", "py3"}


def test_phrase_hits_and_misses(searcher: Searcher) -> None:
    assert ids(searcher, '"自动并行"') == ["paddle"]
    assert ids(searcher, '"并行自动"') == []
    assert ids(searcher, '"Python 3"') == ["py", "py3"] or set(ids(searcher, '"Python 3"')) == {"py", "py3"}


def test_synonyms_are_expanded_both_ways(searcher: Searcher) -> None:
    assert ids(searcher, "PaddlePaddle") == ["paddle"]
    assert set(ids(searcher, "大模型")) >= {"llm"}
    assert "paddle" in ids(searcher, "PaddlePaddle框架")


def test_synonym_file_changes_apply_without_restart(index: Path, tmp_path: Path) -> None:
    synonyms = tmp_path / "synonyms.txt"
    synonyms.write_text("", encoding="utf-8")
    s = Searcher(index, synonyms=synonyms)
    assert ids(s, "晶圆厂") == []
    synonyms.write_text("晶圆厂, 晶圓代工\n", encoding="utf-8")
    os.utime(synonyms, (time.time() + 5, time.time() + 5))
    time.sleep(1.1)
    assert ids(s, "晶圆厂") == ["trad"]
    s.close()


def test_a_question_still_finds_its_answer(searcher: Searcher) -> None:
    hits = ids(searcher, "范冰冰一人饰演了哪个年龄段的武则天？")
    assert hits and hits[0] == "question"


def test_filters_sort_and_facets(searcher: Searcher) -> None:
    assert set(ids(searcher, "source:开源观察")) == {"simp", "paddle"}
    assert set(ids(searcher, "tag:大模型")) == {"paddle", "llm"}
    assert ids(searcher, "date:2025-01") == ["paddle"]
    assert set(ids(searcher, "date:..2023")) == {"llm", "py3", "question"}
    assert ids(searcher, "框架", sources=["开源观察"]) == ["paddle"]
    assert ids(searcher, "框架", sources=["极客日报"]) == []
    assert set(ids(searcher, "", tags=["Python"])) == {"py", "py3"}
    assert ids(searcher, "", tags=["Python"], date_from=datetime(2024, 1, 1)) == ["py"]
    newest = ids(searcher, "Python", sort="date")
    assert newest == ["py", "py3"]
    page = searcher.search("大模型 OR 数据库 OR 飞桨", facets=True)
    sources = dict(page.facets["source"])
    assert sources["开源观察"] == 2
    assert dict(page.facets["tags"])["大模型"] == 2


def test_not_and_or(searcher: Searcher) -> None:
    assert set(ids(searcher, "Python NOT 编码")) == {"py"}
    assert set(ids(searcher, "Python -编码")) == {"py"}
    assert set(ids(searcher, "飞桨 OR 武则天")) == {"paddle", "question"}
    everything_but = ids(searcher, "NOT 飞桨")
    assert "paddle" not in everything_but and len(everything_but) == len(DOCS) - 1


def test_understood_terms_are_reported(searcher: Searcher) -> None:
    assert searcher.search("混合专家 -汽车").terms == ["混合", "专家"]


def test_user_dictionary_keeps_a_word_whole(tmp_path: Path) -> None:
    # jieba's dictionary is per process, so this runs in a fresh one.
    user_dict = tmp_path / "user.txt"
    user_dict.write_text("云栖智算 10 n\n", encoding="utf-8")
    docs = tmp_path / "d.jsonl"
    docs.write_text(
        json.dumps({"id": "a", "title": "云栖智算平台上线", "body": "智算中心"}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    code = textwrap.dedent(
        f"""
        from indexer import Searcher, build_index
        from indexer.analysis import query_terms
        assert query_terms("云栖智算平台") == ["云栖智算", "平台"], query_terms("云栖智算平台")
        build_index([{str(docs)!r}], {str(tmp_path / "index")!r})
        s = Searcher({str(tmp_path / "index")!r})
        info = s.info()
        assert info.user_dict and info.user_dict["path"].endswith("user.txt"), info
        assert [h.id for h in s.search("云栖智算").hits] == ["a"]
        """
    )
    env = {**os.environ, "ZHSEARCH_USER_DICT": str(user_dict)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    # This process runs without that dictionary: the index says so.
    s = Searcher(tmp_path / "index")
    warnings = s.info().warnings
    s.close()
    assert warnings and "rebuild" in warnings[0] and "user.txt" in warnings[0]
