"""The query language parser: operators, fields, dates, and never failing on bad syntax."""

from __future__ import annotations

from datetime import datetime

import pytest

from indexer.plan import drop_stop_chunks
from indexer.query import And, DateRange, Filter, Not, Or, Phrase, Text, parse_date_range, parse_query


@pytest.mark.parametrize(
    ("q", "tree"),
    [
        ("飞桨 开源", And((Text("飞桨"), Text("开源")))),
        ('"开源大模型"', Phrase("开源大模型")),
        ("“开源大模型”", Phrase("开源大模型")),
        ("飞桨 OR PaddlePaddle 框架", And((Or((Text("飞桨"), Text("PaddlePaddle"))), Text("框架")))),
        ("-汽车 大模型", And((Not(Text("汽车")), Text("大模型")))),
        ("NOT 汽车", Not(Text("汽车"))),
        ('-"短语 排除" x', And((Not(Phrase("短语 排除")), Text("x")))),
        ("(大模型 OR LLM) 微调", And((Or((Text("大模型"), Text("LLM"))), Text("微调")))),
        ("title:混合专家", Text("混合专家", "title")),
        ('title:"混合 专家"', Phrase("混合 专家", "title")),
        ("source:开源观察 tag:MoE", And((Filter("source", "开源观察"), Filter("tags", "MoE")))),
        ('source:"开源 观察"', Filter("source", "开源 观察")),
        ("GPT-4o", Text("GPT-4o")),
    ],
)
def test_parse(q: str, tree: object) -> None:
    assert parse_query(q) == tree


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("2025", datetime(2025, 1, 1), datetime(2026, 1, 1)),
        ("2024-02", datetime(2024, 2, 1), datetime(2024, 3, 1)),
        ("2024-01..2024-06", datetime(2024, 1, 1), datetime(2024, 7, 1)),
        ("2024-01-15..", datetime(2024, 1, 15), None),
        ("..2023", None, datetime(2024, 1, 1)),
        (">=2025-03-01", datetime(2025, 3, 1), None),
        (">2025-03-01", datetime(2025, 3, 2), None),
        ("<2024", None, datetime(2024, 1, 1)),
        ("<=2024-05", None, datetime(2024, 6, 1)),
    ],
)
def test_date_ranges(value: str, start: datetime | None, end: datetime | None) -> None:
    assert parse_date_range(value) == DateRange(start, end)


@pytest.mark.parametrize("value", ["abc", "2024-13", "..", "2024-02-30"])
def test_bad_dates_are_text(value: str) -> None:
    assert parse_query(f"date:{value}") == Text(f"date:{value}")


@pytest.mark.parametrize(
    ("q", "tree"),
    [
        ('"未闭合 引号', And((Text("未闭合"), Text("引号")))),
        ("a)", Text("a")),
        ("a) b", And((Text("a"), Text("b")))),
        ("(((", None),
        ("", None),
        ("OR", Text("OR")),
        ("http://example.com", And((Text("http:"), Text("//example.com")))),
        ("C: 盘", And((Text("C:"), Text("盘")))),
        ("unknown:x", And((Text("unknown:"), Text("x")))),
    ],
)
def test_malformed_syntax_degrades_to_text(q: str, tree: object) -> None:
    assert parse_query(q) == tree


@pytest.mark.parametrize(
    ("q", "tree"),
    [
        ("如何在 Ubuntu 上安装 Docker", And((Text("Ubuntu"), Text("上安装"), Text("Docker")))),
        ("如何在 Docker", Text("Docker")),
        ('怎么 "混合专家"', Phrase("混合专家")),
        # Stop words alone are still searched; so is a chunk beside only an exclusion.
        ("如何在", Text("如何在")),
        ("的 了", And((Text("的"), Text("了")))),
        ("如何在 -Docker", And((Text("如何在"), Not(Text("Docker"))))),
    ],
)
def test_chunks_of_stop_words_alone_are_left_out(q: str, tree: object) -> None:
    assert drop_stop_chunks(parse_query(q)) == tree
