"""Snippets and highlighting: exact marks on the original characters, everything else escaped."""

from __future__ import annotations

from indexer.highlight import find_spans, highlight_all, snippet


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


def test_everything_is_escaped() -> None:
    text = '<script>alert("x")</script> 混合专家 & <b>'
    html = snippet(text, {"混合", "专家", "script"})
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;<mark>script</mark>&gt;" in html
    assert "&amp; &lt;b&gt;" in html


def test_stop_words_are_not_marked() -> None:
    assert highlight_all("模型的训练", {"的", "训练"}) == "模型的<mark>训练</mark>"


def test_snippet_is_a_window_around_the_best_passage() -> None:
    filler = "这是一段与查询无关的填充文字。" * 30
    text = filler + "混合专家架构让推理更便宜。" + filler
    html = snippet(text, {"混合", "专家"})
    plain = html.replace("<mark>", "").replace("</mark>", "")
    assert "<mark>混合专家</mark>" in html
    assert html.startswith("…") and html.endswith("…")
    assert 80 <= len(plain) <= 200


def test_snippet_without_match_is_the_start() -> None:
    assert snippet("开头的句子。后面还有。", {"不存在"}) == "开头的句子。后面还有。"


def test_whitespace_runs_collapse() -> None:
    assert snippet("第一段\n\n第二段", set()) == "第一段 第二段"
