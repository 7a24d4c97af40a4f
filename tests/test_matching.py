"""What matches a query (issue 14): typed runs as units, full matches first, questions, regional words, scripts.

A real Whoosh index over a dozen small articles written for these checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from indexer import Searcher, build_index
from indexer.analysis import query_terms
from indexer.plan import plan_match, regional_forms
from indexer.query import Text, parse_query, positive_texts

ARTICLES = {
    "llm": ("大模型的训练成本", "大模型需要大量算力，训练一个大模型要几个月。"),
    "apart": ("大学的模型社团", "这所大学有一个航模社团，学生们做飞机模型。"),
    "tsmc": ("台积电扩产", "台积电宣布在日本扩产，芯片产能继续提升。"),
    "battery": ("手机省电技巧", "关掉蓝牙可以省电，电池更耐用。"),
    "lvm": ("逻辑卷扩容指南", "用 lvextend 给逻辑卷扩容，然后用 resize2fs 扩展文件系统。"),
    "lvm-intro": ("LVM 简介", "逻辑卷管理把多块磁盘组成卷组，再划分逻辑卷。"),
    "resize": ("分区扩容", "磁盘空间不够时，可以给分区扩容。"),
    "tw-soft": ("軟體開發流程", "軟體開發需要版本控制與持續整合，伺服器上的程式要自動部署。"),
    "cn-soft": ("软件开发入门", "软件开发从需求分析开始。"),
    "dotnet": ("C#与.NET入门", "使用.NET开发桌面程序，C#是主要语言。"),
    "nginx": ("在Linux上安装Nginx", "本文介绍如何在 Linux 上安装 Nginx 并配置反向代理。"),
    "linux-only": ("Linux 常用命令", "Linux 的 ls、cd 和 grep 命令。安装软件用 apt。"),
}


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    root = tmp_path_factory.mktemp("matching")
    lines = [json.dumps({"id": k, "title": t, "body": b}, ensure_ascii=False) for k, (t, b) in ARTICLES.items()]
    (root / "articles.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_index([root / "articles.jsonl"], root / "index")
    s = Searcher(root / "index")
    yield s
    s.close()


def full(searcher: Searcher, q: str, **kwargs: object) -> set[str]:
    return {h.id for h in searcher.search(q, size=20, **kwargs).hits if not h.missing}  # type: ignore[arg-type]


def test_a_typed_run_keeps_its_pieces_together(searcher: Searcher) -> None:
    assert query_terms("大模型") == ["大", "模型"]  # split by the segmenter ...
    assert full(searcher, "大模型") == {"llm"}  # ... but 大 and 模型 apart (大学, 模型社团) is no match
    page = searcher.search("台积电")
    assert [h.id for h in page.hits] == ["tsmc"]  # never the articles with a lone 电


def test_the_loose_fallback_never_falls_back_to_a_lone_character() -> None:
    plan = plan_match([Text("台积电", relaxed=True)])
    assert [u.label for u in plan.units] == ["台积"]


def test_full_matches_come_first_and_the_page_says_what_the_rest_lack(searcher: Searcher) -> None:
    page = searcher.search("逻辑卷 扩容")
    assert page.total_full == 1 and page.hits[0].id == "lvm" and page.hits[0].missing == []
    rest = {h.id: h.missing for h in page.hits[1:]}
    assert rest == {"lvm-intro": ["扩容"], "resize": ["逻辑卷"]}
    assert page.to_dict()["total_full"] == 1 and page.to_dict()["total"] == 3


def test_mode_all_is_strict_and(searcher: Searcher) -> None:
    page = searcher.search("逻辑卷 扩容", mode="all")
    assert [h.id for h in page.hits] == ["lvm"] and page.total == page.total_full == 1


def test_a_plus_word_must_match(searcher: Searcher) -> None:
    assert {h.id for h in searcher.search("逻辑卷 +扩容").hits} == {"lvm", "resize"}
    assert parse_query("+扩容") == Text("扩容", required=True)


def test_a_question_needs_its_informative_words(searcher: Searcher) -> None:
    page = searcher.search("如何在Linux上安装Nginx？")
    # linux, 安装 and nginx count; 如何, 在 and the lone 上 do not.
    plan = plan_match(positive_texts(parse_query("如何在Linux上安装Nginx？")))
    assert [u.label for u in plan.counted] == ["Linux", "安装", "Nginx"] and plan.min_match == 3
    assert page.total_full == 1 and page.hits[0].id == "nginx"


def test_regional_vocabulary_is_folded_both_ways(searcher: Searcher) -> None:
    assert {"软件开发", "软体开发"} <= set(regional_forms("軟體開發"))
    assert "软体开发" in regional_forms("软件开发")
    assert full(searcher, "软件开发") == {"tw-soft", "cn-soft"}
    assert full(searcher, "軟體開發") == {"tw-soft", "cn-soft"}
    assert "tw-soft" in full(searcher, "服务器")


@pytest.mark.parametrize(
    ("q", "terms"),
    [
        ("C#与.NET", ["c#", "与", ".net"]),
        ("使用.NET开发", ["使用", ".net", "开发"]),
        ("C++开发", ["c++", "开发"]),
        ("Node.js教程", ["node.js", "教程"]),
        ("Python3安装", ["python3", "安装"]),
    ],
)
def test_mixed_script_tokens_split_at_every_boundary(q: str, terms: list[str]) -> None:
    assert query_terms(q) == terms


def test_dotnet_after_chinese_is_found(searcher: Searcher) -> None:
    assert full(searcher, ".NET") == {"dotnet"}
    assert full(searcher, ".net") == {"dotnet"}
    assert full(searcher, "C#与.NET") == {"dotnet"}


def test_single_characters_side_by_side_in_a_question_are_one_unit() -> None:
    plan = plan_match(positive_texts(parse_query("津蓟铁路沿线设置了哪几个站点？")))
    assert [(u.label, u.forms, u.counts) for u in plan.units][0] == ("津蓟", (("津", "蓟"),), True)
    # Each character still scores on its own; a stop word at the end is not part of the name.
    assert [(u.label, u.counts) for u in plan.units][1:3] == [("津", False), ("蓟", False)]
    assert [u.label for u in plan_match(positive_texts(parse_query("前趙的建立者是誰?"))).counted] == ["前赵", "建立"]


QUESTION_DOCS = {
    "proxy": "安装 Nginx 之后配置反向代理，把请求转给后端。",
    "nginx": "安装 Nginx 并修改配置文件。",
    **{f"other{i}": f"安装软件之前先检查配置，第 {i} 步。" for i in range(6)},
    "plain1": "今天天气很好。",
    "plain2": "王沈，字处道，太原晋阳人。",
}


@pytest.fixture(scope="module")
def question_searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    root = tmp_path_factory.mktemp("questions")
    lines = [json.dumps({"id": k, "title": "", "body": b}, ensure_ascii=False) for k, b in QUESTION_DOCS.items()]
    (root / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_index([root / "docs.jsonl"], root / "index")
    s = Searcher(root / "index")
    yield s
    s.close()


def test_a_questions_common_words_only_add_to_the_score(question_searcher: Searcher) -> None:
    # 安装 and 配置 are in 8 of 10 documents: only Nginx, 反向 and 代理 decide a full match (all
    # three), where 3 of the 5 words would also let the plain Nginx article through.
    page = question_searcher.search("怎么安装配置Nginx反向代理？")
    assert page.total_full == 1 and page.hits[0].id == "proxy"
    assert page.hits[1].id == "nginx" and page.hits[1].missing == ["反向", "代理"]


def test_a_question_with_no_full_match_still_finds_shared_characters(question_searcher: Searcher) -> None:
    # The segmenter reads 王沈是 as one word, which no document has; its character pairs find the answer.
    page = question_searcher.search("王沈是哪里人？")
    assert page.total_full == 0 and page.hits and page.hits[0].id == "plain2"


def test_a_name_in_a_question_leaves_out_the_word_that_frames_it() -> None:
    # 樹坐指的是…: 指 (refers to) frames the question; the name is 樹坐, not 樹坐指.
    plan = plan_match([Text("樹坐指的是哪一種抗爭方式?")])
    labels = [u.label for u in plan.units if u.counts]
    assert "树坐" in labels and "树坐指" not in labels  # labels are folded
