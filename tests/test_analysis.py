"""The analyzer: exact tokens, positions and offsets into the original text."""

from __future__ import annotations

import pytest

from indexer.analysis import ChineseTokenizer, folded_pattern, iter_terms, normalize, query_terms


def index_tokens(text: str) -> list[tuple[str, int, int, int]]:
    return [
        (t.text, t.pos, t.startchar, t.endchar)
        for t in ChineseTokenizer()(text, positions=True, chars=True, mode="index")
    ]


def test_precise_words_get_ordinal_positions() -> None:
    assert [(t, p) for t, p, _, _ in iter_terms("混合专家模型开源", "query")] == [
        ("混合", 0),
        ("专家", 1),
        ("模型", 2),
        ("开源", 3),
    ]


def test_search_mode_subwords_share_the_parent_position() -> None:
    tokens = index_tokens("中华人民共和国成立")
    assert tokens[0] == ("中华人民共和国", 0, 0, 7)
    subwords = {(t, p, s, e) for t, p, s, e in tokens[1:-1]}
    assert ("人民", 0, 2, 4) in subwords
    assert ("共和国", 0, 4, 7) in subwords
    assert tokens[-1] == ("成立", 1, 7, 9)


def test_query_mode_has_no_subwords() -> None:
    assert query_terms("中华人民共和国成立") == ["中华人民共和国", "成立"]


def test_offsets_point_into_the_original_text() -> None:
    text = "百度开源ERNIE 4.5，支持飞桨。"
    for term, _, start, end in iter_terms(text, "index"):
        assert normalize(text[start:end]) == term


def test_identifier_is_indexed_whole_and_by_parts() -> None:
    terms = {t for t, *_ in iter_terms("ERNIE-4.5-VL-28B-A3B", "index")}
    assert {"ernie-4.5-vl-28b-a3b", "ernie", "4.5", "vl", "28b", "a3b"} <= terms
    assert query_terms("ERNIE-4.5-VL-28B-A3B") == ["ernie-4.5-vl-28b-a3b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v2.7.4", {"v2.7.4", "2.7.4"}),
        ("GPT-4o", {"gpt-4o", "gpt", "4o"}),
        ("Qwen2.5-VL-32B", {"qwen2.5-vl-32b", "qwen2.5", "vl", "32b"}),
        ("C++", {"c++"}),
        ("C#", {"c#"}),
        (".NET", {".net", "net"}),
        ("Node.js", {"node.js", "node", "js"}),
        ("iPhone15", {"iphone15", "iphone", "15"}),
        ("5G", {"5g"}),
        ("Python3", {"python3", "python", "3"}),
    ],
)
def test_technical_identifiers(text: str, expected: set[str]) -> None:
    assert expected <= {t for t, *_ in iter_terms(text, "index")}


def test_identifier_parts_take_successive_positions() -> None:
    tokens = [(t, p) for t, p, _, _ in iter_terms("Python3", "index")]
    assert ("python3", 0) in tokens
    assert ("python", 0) in tokens
    assert ("3", 1) in tokens


def test_single_letters_and_digits_are_kept() -> None:
    assert query_terms("C 语言 第 3 版") == ["c", "语言", "第", "3", "版"]


def test_fullwidth_and_case_fold_without_changing_length() -> None:
    text = "ＥＲＮＩＥ　４．５ Python"
    assert normalize(text) == "ernie 4.5 python"
    assert len(normalize(text)) == len(text)
    assert query_terms(text) == ["ernie", "4.5", "python"]


def test_no_english_stemming() -> None:
    assert query_terms("searching models") == ["searching", "models"]


def test_punctuation_and_spaces_are_dropped() -> None:
    assert query_terms("，。！  ？、") == []


def test_tokens_of_an_identifier_are_in_position_order() -> None:
    positions = [p for _, p, _, _ in iter_terms("1a-1 ERNIE-4.5-VL", "index")]
    assert positions == sorted(positions)


def test_tokenize_false_returns_the_whole_value() -> None:
    tokens = list(ChineseTokenizer()("Ab 中文", tokenize=False))
    assert [t.text for t in tokens] == ["ab 中文"]


@pytest.mark.parametrize(
    ("folded", "text", "found"),
    [
        ("经济发展", "台灣經濟發展很快", "經濟發展"),
        ("ai模型", "新的ＡＩ模型", "ＡＩ模型"),
        ("python", "学 Python 3", "Python"),
        ("混合专家", "混合 专家", None),
        ("c++", "C++ 与 c#", "C++"),
    ],
)
def test_folded_pattern_finds_every_way_of_writing(folded: str, text: str, found: str | None) -> None:
    match = folded_pattern(folded).search(text)
    assert (match.group() if match else None) == found
    if match:
        assert normalize(match.group()) == folded
