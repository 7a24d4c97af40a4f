"""Snippets and highlighting: marks on what matched, on the original characters, everything else escaped."""

from __future__ import annotations

import re
import unicodedata

from indexer.highlight import SNIPPET_COLUMNS, find_spans, highlight_all, plain_text, snippet
from indexer.plan import highlight_forms
from indexer.query import parse_query


def marked(html: str) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", html)


def columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def test_marks_chinese_english_case_insensitively_and_numbers() -> None:
    html = highlight_all("百度开源 ERNIE 4.5 模型", {"ernie", "4.5", "开源"})
    assert html == "百度<mark>开源</mark> <mark>ERNIE</mark> <mark>4.5</mark> 模型"


def test_adjacent_terms_become_one_mark() -> None:
    assert highlight_all("混合专家模型", {"混合", "专家"}) == "<mark>混合专家</mark>模型"


def test_longest_term_wins() -> None:
    assert highlight_all("ERNIE-4.5-VL-28B-A3B", {"ernie-4.5-vl-28b-a3b", "ernie", "4.5"}) == (
        "<mark>ERNIE-4.5-VL-28B-A3B</mark>"
    )


def test_no_match_inside_longer_latin_words_or_numbers() -> None:
    assert find_spans("email 2024 ai", {"ai"}) == [(11, 13)]
    assert find_spans("2024年", {"4"}) == []
    # A letter/digit boundary is a word boundary: Python3 contains python.
    assert find_spans("Python3", {"python"}) == [(0, 6)]


def test_fullwidth_text_is_matched_and_shown_as_written() -> None:
    assert highlight_all("ＥＲＮＩＥ发布", {"ernie"}) == "<mark>ＥＲＮＩＥ</mark>发布"


def test_a_typed_run_is_marked_only_where_its_pieces_stand_together() -> None:
    forms = highlight_forms(parse_query("大模型"))
    html = highlight_all("大会上，大学生说最大的改动是大模型与模型压缩", forms)
    assert marked(html) == ["大模型"]
    # 逻辑卷: the 卷 of 卷组 alone is not marked.
    html = highlight_all("创建卷组后扩展逻辑卷，再扩容文件系统", highlight_forms(parse_query("逻辑卷 扩容")))
    assert marked(html) == ["逻辑卷", "扩容"]


def test_a_lone_character_is_marked_only_when_typed_alone() -> None:
    text = "大会讨论了模型"
    assert marked(highlight_all(text, highlight_forms(parse_query("大 模型")))) == ["大", "模型"]
    # In a question the lone characters (有, 个) help rank; they are not what was asked for.
    forms = highlight_forms(parse_query("文心大模型4.5有多少个模型？"))
    html = highlight_all("文心大模型4.5 有 10 个模型，状态良好", forms)
    assert "有" not in marked(html) and "个" not in marked(html)
    assert all(word in "".join(marked(html)) for word in ("文心", "模型", "4.5"))


def test_an_identifier_is_marked_whole_never_its_parts_elsewhere() -> None:
    forms = highlight_forms(parse_query("ERNIE 4.5"))
    html = highlight_all("ERNIE 4.5 对比 Qwen-0.5B 与 KiMi-2.5，以及 4.5 版", forms)
    assert marked(html) == ["ERNIE", "4.5", "4.5"]  # not the 5 of 0.5B or 2.5
    # python3 matches "Python 3" (the index holds its pieces side by side), and is marked so.
    assert marked(highlight_all("安装 Python 3 与 python3.11", highlight_forms(parse_query("python3")))) == [
        "Python 3",
        "python3",
    ]


def test_everything_is_escaped() -> None:
    text = '<script>alert("x")</script> 混合专家 & <b>'
    html = snippet(text, {"混合", "专家", "script"})
    assert "<script>" not in html and "<b>" not in html
    assert "<mark>混合专家</mark> &amp;" in html
    title = highlight_all(text, {"script"})
    assert "&lt;<mark>script</mark>&gt;" in title and "<script>" not in title


def test_stop_words_are_not_marked() -> None:
    assert highlight_all("模型的训练", {"的", "训练"}) == "模型的<mark>训练</mark>"


def test_plain_text_takes_out_markdown_html_and_escaped_breaks() -> None:
    text = (
        "## 安装\n\n**混合专家**（MoE）见 [文档](https://x.org/a_b) 和 ![架构图](a.png)。\\n下一行 `pip install` "
        "x86_64 与 a*b\n- 列表项\n> 引用\n| 列 | 值 |\n|---|---|\n| a | 1 |\n<p>段落<b>加粗</b></p>&amp;"
    )
    plain = plain_text(text)
    for junk in ("##", "**", "](", "![", "\\n", "`", "|---", "<p>", "<b>", "&amp;", "- 列表", "> 引用"):
        assert junk not in plain, junk
    for kept in (
        "安装",
        "混合专家",
        "文档",
        "架构图",
        "下一行",
        "pip install",
        "x86_64",
        "a*b",
        "列表项",
        "段落加粗",
        "&",
    ):
        assert kept in plain, kept


def test_snippet_prefers_the_passage_with_the_whole_run() -> None:
    filler = "这是一段与查询无关的填充文字。" * 12
    text = filler + "专家说。" + filler + "专家们认为专家意见。" + filler + "混合专家架构让推理更便宜。" + filler
    html = snippet(text, highlight_forms(parse_query("混合专家")))
    assert marked(html) == ["混合专家"]


def test_snippet_prefers_more_distinct_words() -> None:
    filler = "这是一段与查询无关的填充文字。" * 12
    text = filler + "扩容扩容扩容。" + filler + "先扩展逻辑卷，然后扩容。" + filler
    html = snippet(text, highlight_forms(parse_query("逻辑卷 扩容")))
    assert marked(html) == ["逻辑卷", "扩容"]


def test_snippet_is_about_three_phone_lines_and_cut_at_word_boundaries() -> None:
    filler = "这是一段与查询无关的填充文字。" * 30
    text = filler + "混合专家架构让推理更便宜。" + filler
    html = snippet(text, {"混合", "专家"})
    plain = html.replace("<mark>", "").replace("</mark>", "")
    assert "<mark>混合专家</mark>" in html
    assert html.startswith("…") and html.endswith("…")
    assert SNIPPET_COLUMNS - 4 <= columns(plain.strip("…")) <= SNIPPET_COLUMNS
    latin = "configuration management " * 20 + "Kubernetes 的混合专家部署 " + "deployment pipeline " * 20
    html = snippet(latin, {"混合", "专家"})
    plain = html.replace("<mark>", "").replace("</mark>", "").strip("…")
    words = set(latin.split())
    edges = plain.split()
    assert edges[0] in words and edges[-1] in words  # neither edge is a piece of a word


def test_snippet_without_match_is_the_start() -> None:
    assert snippet("开头的句子。后面还有。", {"不存在"}) == "开头的句子。后面还有。"


def test_whitespace_runs_collapse() -> None:
    assert snippet("第一段\n\n第二段", set()) == "第一段 第二段"


def test_snippet_never_cuts_a_mark() -> None:
    # The passage's end would fall inside 分布式锁: the mark is shown whole.
    text = "混合专家" + "字" * 64 + "分布式锁" + "尾" * 100
    html = snippet(text, {"混合专家", "分布式锁"})
    assert marked(html) == ["混合专家", "分布式锁"]


def test_display_columns_count_wide_characters_twice() -> None:
    # The snippet window is measured in display columns (a Chinese or full-width character takes two);
    # the counting runs in C over a string of width marks, and must give what a plain count gives.
    import random
    import unicodedata

    from indexer.highlight import _end_after, _start_before

    def width(ch: str) -> int:
        return 2 if unicodedata.east_asian_width(ch) in "WF" else 1

    def end_after(text: str, start: int, columns: int) -> int:
        used, i = 0, start
        while i < len(text) and used < columns:
            used, i = used + width(text[i]), i + 1
        return i

    def start_before(text: str, end: int, columns: int) -> int:
        used, i = 0, end
        while i > 0 and used < columns:
            i -= 1
            used += width(text[i])
        return i

    rnd = random.Random(7)
    for _ in range(3000):
        text = "".join(rnd.choice("ab c1中文字，。Ｆ😀é") for _ in range(rnd.randint(0, 30)))
        at, columns = rnd.randint(0, len(text)), rnd.randint(-1, 40)
        assert _end_after(text, at, columns) == end_after(text, at, columns)
        assert _start_before(text, at, columns) == start_before(text, at, columns)
