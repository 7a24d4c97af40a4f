"""Worst-case input: every query string gives a query or plain text, every parameter a value or a 400.

Covers deep nesting, runs of operators, dates at the ends of the calendar,
reversed ranges, huge numbers and odd parameter values, through the parser,
the library against a real index, the Flask app and the CLI.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer import QueryError, Searcher
from indexer.backends.typesense.query import compile_filter
from indexer.backends.whoosh.query import compile_request_query
from indexer.cli import cli
from indexer.query import (
    MAX_CLAUSES,
    MAX_DEPTH,
    NO_DATES,
    And,
    DateRange,
    Node,
    Not,
    Or,
    Phrase,
    Text,
    parse_date_range,
    parse_query,
    positive_texts,
)
from service.config import MAX_QUERY_CHARS


def _fit(text: str, limit: int = MAX_QUERY_CHARS) -> str:
    """``text`` repeated or cut to exactly ``limit`` characters."""
    return (text * (limit // len(text) + 1))[:limit]


# One or more members of each class of query that used to fail, at the service's length limit.
HOSTILE = [
    _fit("("),
    _fit("（"),
    _fit(")"),
    _fit("(a OR (b AND (c "),
    _fit("(飞桨 OR (开源 AND (NOT 汽车 "),
    _fit("NOT ")[:-2] + " x",
    _fit("NOT ("),
    _fit("-(-(-("),
    _fit("（NOT （"),
    _fit("(a OR )"),
    _fit("NOT )"),
    _fit("飞桨 OR "),
    _fit(" OR "),
    _fit("AND "),
    _fit('"'),
    _fit('"a'),
    _fit("“（"),
    _fit("title:"),
    _fit("title:("),
    _fit("date:"),
    _fit("source:"),
    _fit('source:"'),
    _fit("date:9999 "),
    "date:9999",
    "date:9999-12-31",
    "date:>9999",
    "date:>9999-12-31",
    "date:..9999",
    "date:<0001",
    "date:<0001-01-01",
    "date:<=0000",
    "date:0000",
    "date:0000-02-29",
    "date:>=9999-12",
    "date:9999-12..",
    "date:9999..0000",
    "date:2020..2019",
    "date:>=",
    "date:....",
    "飞桨 date:<0001",
    "飞桨 -date:>9999",
    "a\x00b",
    "\ud800",
    "\udfff飞桨",
]
# The same classes, far beyond the service's limit (the library and the CLI take any length).
LONG = [
    "(" * 100_000,
    "（" * 100_000,
    "(a OR (b AND (c " * 10_000,
    "NOT " * 50_000 + "x",
    "-(-(-(" * 20_000,
    " OR ".join(["飞桨"] * 20_000),
    "(a OR )" * 20_000,
    "飞桨 " * 30_000,
    "date:9999 " * 10_000,
    '"' * 100_000,
]


def _depth(node: Node | None) -> int:
    """How many operators deep the tree goes (a leaf alone is 0)."""
    deepest = 0
    stack = [(node, 0)] if node is not None else []
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(n, And | Or):
            stack.extend((c, d + 1) for c in n.children)
        elif isinstance(n, Not):
            stack.append((n.child, d + 1))
    return deepest


def _leaves(node: Node | None) -> int:
    count = 0
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, And | Or):
            stack.extend(n.children)
        elif isinstance(n, Not):
            stack.append(n.child)
        else:
            count += 1
    return count


def _check_tree(tree: Node | None) -> None:
    # Each group adds at most an AND, an OR and a NOT; so does the top level.
    assert _depth(tree) <= 3 * (MAX_DEPTH + 1)
    assert _leaves(tree) <= MAX_CLAUSES
    # Both compilers walk the whole tree.
    compile_request_query(tree)
    compile_filter(tree)


# -- the parser -----------------------------------------------------------------


@pytest.mark.parametrize("q", HOSTILE + LONG, ids=lambda q: repr(q[:20]))
def test_hostile_queries_parse_to_a_bounded_tree(q: str) -> None:
    _check_tree(parse_query(q))


def test_parentheses_beyond_the_depth_limit_only_separate_words() -> None:
    deep = "(" * (MAX_DEPTH + 10) + "a b" + ")" * (MAX_DEPTH + 10) + " c"
    assert parse_query(deep) == And((And((Text("a"), Text("b"))), Text("c")))
    # A ")" of a flattened "(" does not close a real group.
    assert parse_query("(" * (MAX_DEPTH + 1) + "a) b) c") == And((And((Text("a"), Text("b"))), Text("c")))


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1001, MAX_DEPTH + 1])
def test_a_run_of_nots_is_one_not_or_none(n: int) -> None:
    expected = Not(Text("x")) if n % 2 else Text("x")
    assert parse_query("NOT " * n + "x") == expected
    assert parse_query("NOT (" * n + "x") == expected


def test_double_negation_cancels() -> None:
    assert parse_query("NOT -x") == Text("x")
    assert parse_query('NOT -"a b"') == Phrase("a b")


def test_a_close_paren_is_never_an_operand() -> None:
    assert parse_query("(a OR ) b") == And((Text("a"), Text("b")))
    assert parse_query("(NOT ) b") == Text("b")


def test_clauses_beyond_the_limit_are_ignored() -> None:
    tree = parse_query(" ".join(f"w{i}" for i in range(MAX_CLAUSES + 50)))
    assert positive_texts(tree) == [Text(f"w{i}") for i in range(MAX_CLAUSES)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # An end past the last day is an open end.
        ("9999", DateRange(datetime(9999, 1, 1), None)),
        ("9999-12-31", DateRange(datetime(9999, 12, 31), None)),
        ("..9999", DateRange(None, None)),
        ("<=9999-12", DateRange(None, None)),
        (">=9999-12", DateRange(datetime(9999, 12, 1), None)),
        ("9999-12..", DateRange(datetime(9999, 12, 1), None)),
        (">9999-12-30", DateRange(datetime(9999, 12, 31), None)),
        # A start before the first day is an open start.
        ("0000..2020", DateRange(None, datetime(2021, 1, 1))),
        (">=0000-06", DateRange(None, None)),
        (">0000", DateRange(datetime(1, 1, 1), None)),
        ("0001", DateRange(datetime(1, 1, 1), datetime(2, 1, 1))),
        ("<0001-01-02", DateRange(None, datetime(1, 1, 2))),
        # Wholly outside the calendar: nothing.
        (">9999", NO_DATES),
        (">9999-12-31", NO_DATES),
        ("<0001", NO_DATES),
        ("<0001-01-01", NO_DATES),
        ("<=0000", NO_DATES),
        ("0000", NO_DATES),
        ("0000-02-29", NO_DATES),
        ("..0000-12-31", NO_DATES),
        # The wrong way round is read the right way round.
        ("2020..2019", DateRange(datetime(2019, 1, 1), datetime(2021, 1, 1))),
        ("2024-06-30..2024-06-01", DateRange(datetime(2024, 6, 1), datetime(2024, 7, 1))),
        ("2020-06..2020-05-31", DateRange(datetime(2020, 5, 31), datetime(2020, 7, 1))),
        ("9999..0000", DateRange(None, None)),
        # Not reversed: June to the end of the year it is in.
        ("2020-06..2020", DateRange(datetime(2020, 6, 1), datetime(2021, 1, 1))),
    ],
)
def test_dates_at_the_ends_of_the_calendar(value: str, expected: DateRange) -> None:
    assert parse_date_range(value) == expected


@pytest.mark.parametrize("value", ["0000-02-30", "2023-02-29", "9999-13", "0000-00", "99999", ">=", "..", "....", "<"])
def test_impossible_dates_are_text(value: str) -> None:
    assert parse_query(f"date:{value}") == Text(f"date:{value}")


def test_no_dates_is_empty_in_both_backends() -> None:
    assert NO_DATES.start == NO_DATES.end
    compile_request_query(NO_DATES)
    compile_filter(NO_DATES)


SYNTAX = [
    "(", ")", "（", "）", '"', "“", "”", "＂", "：", "－", " ", "\u3000", "\t",
    "NOT ", " OR ", " AND ", "-", ":", "..", ">=", "<=", ">", "<",
    "title:", "body:", "date:", "source:", "tag:", "TITLE:", "http:",
    "9999", "0000", "0001", "2025", "-12", "-31", "-02-29", "-13",
    "飞桨", "开源", "大模型", "的", "a", "MoE", "Python3", "？",
    "\x00", "\ud800", "\U0001f600", "`",
]  # fmt: skip
query_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(SYNTAX), max_size=150).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(q=query_text)
def test_fuzzed_queries_parse_to_a_bounded_tree(q: str) -> None:
    _check_tree(parse_query(q))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(q=query_text)
def test_fuzzed_queries_run_against_a_real_index(searcher: Searcher, q: str) -> None:
    if not q.split():
        with pytest.raises(QueryError):
            searcher.search(q)
        return
    page = searcher.search(q, facets=True)
    assert page.total >= len(page.hits)


# -- the library against a real index --------------------------------------------


@pytest.mark.parametrize("q", HOSTILE + LONG, ids=lambda q: repr(q[:20]))
def test_hostile_queries_run_against_a_real_index(searcher: Searcher, q: str) -> None:
    page = searcher.search(q, facets=True)
    assert page.total >= len(page.hits)


@pytest.mark.parametrize(
    ("q", "total"),
    [
        # The six dated documents of the mini corpus run from 2024-08-15 to 2025-06-30.
        ("date:..9999", 6),
        ("date:0000..9999", 6),
        ("date:9999..0000", 6),
        ("date:0001..", 6),
        ("date:<=9999-12-31", 6),
        ("date:9999", 0),
        ("date:9999-12-31", 0),
        ("date:>9999", 0),
        ("date:<0001", 0),
        ("date:0000", 0),
        ("date:2025..2024", 6),
        ("date:2025-03..2024-10", 3),
    ],
)
def test_whoosh_searches_dates_at_the_ends_of_the_calendar(searcher: Searcher, q: str, total: int) -> None:
    assert searcher.search(q).total == total


@pytest.mark.parametrize(
    ("date_from", "date_to", "total"),
    [
        (None, datetime.min, 0),
        (datetime.max, None, 0),
        (datetime.min, datetime.max, 6),
        (datetime.max, datetime.min, 0),
    ],
)
def test_library_dates_at_the_ends_of_the_calendar(
    searcher: Searcher, date_from: datetime | None, date_to: datetime | None, total: int
) -> None:
    assert searcher.search("date:..9999", date_from=date_from, date_to=date_to).total == total


def test_a_reversed_range_matches_like_the_api_swap(searcher: Searcher, client: FlaskClient) -> None:
    in_query = searcher.search("date:2025-03..2024-10")
    # date:..9999 matches every dated document, so only from/to narrow the API's results.
    api = client.get("/api/search", query_string={"q": "date:..9999", "from": "2025-03-31", "to": "2024-10-01"})
    assert in_query.total == api.get_json()["total"] == 3
    assert [h.id for h in in_query.hits] == [r["id"] for r in api.get_json()["results"]]


# -- the web service -------------------------------------------------------------


# A URL cannot carry a lone surrogate: test_odd_bytes_in_parameters_are_a_400 sends its bytes.
@pytest.mark.parametrize("q", [q for q in HOSTILE if q.isprintable() or "\x00" in q], ids=lambda q: repr(q[:20]))
def test_hostile_queries_through_the_api_and_the_page(client: FlaskClient, q: str) -> None:
    api = client.get("/api/search", query_string={"q": q})
    page = client.get("/", query_string={"q": q})
    if "\x00" in q:
        assert api.status_code == page.status_code == 400
        assert api.get_json()["error"]["code"] == "invalid_query"
        return
    assert api.status_code == 200, api.get_data(as_text=True)
    assert page.status_code == 200


BAD_NUMBERS = [
    "9" * 5000,
    "1" * 10_000,
    "0",
    "00",
    "01",
    "007",
    "+5",
    " 5",
    "5 ",
    "５",
    "1e3",
    "-1",
    "",
    "1.0",
    "0x10",
    "\x00",
]


@pytest.mark.parametrize("raw", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("name", ["page", "size"])
def test_bad_page_numbers_are_a_400(client: FlaskClient, name: str, raw: str) -> None:
    api = client.get("/api/search", query_string={"q": "飞桨", name: raw})
    assert api.status_code == 400
    error = api.get_json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["message"].startswith(f"{name} must be a whole number from 1 to ")
    page = client.get("/", query_string={"q": "飞桨", name: raw})
    assert page.status_code == 400
    assert page.mimetype == "text/html"
    # The page speaks Chinese: 页码 / 每页条数 must be a whole number in range.
    label = {"page": "页码", "size": "每页条数"}[name]
    assert f"{label}应是 1 到 " in page.get_data(as_text=True)


@pytest.mark.parametrize("raw", BAD_NUMBERS, ids=repr)
def test_bad_suggestion_limits_are_a_400(client: FlaskClient, raw: str) -> None:
    response = client.get("/api/suggest", query_string={"q": "飞", "limit": raw})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_parameter"
    assert response.get_json()["error"]["message"] == "limit must be a whole number from 1 to 20"


@pytest.mark.parametrize("q", [_fit("("), _fit("NOT "), _fit('"'), "title:", "-", 'a"b', "date:9999"], ids=repr)
def test_hostile_queries_to_suggest(client: FlaskClient, q: str) -> None:
    assert client.get("/api/suggest", query_string={"q": q}).status_code == 200


@pytest.mark.parametrize("raw", ["0000-01-01", "10000-01-01", "２０２５-01-01", "2025-1-1", "2025-02-30", "-001-01-01"])
def test_dates_outside_the_calendar_are_a_400(client: FlaskClient, raw: str) -> None:
    for name in ("from", "to"):
        response = client.get("/api/search", query_string={"q": "飞桨", name: raw})
        assert response.status_code == 400
        message = response.get_json()["error"]["message"]
        assert message.startswith(f"{name} must be a date written YYYY-MM-DD, from 0001-01-01 to 9999-12-31")


@pytest.mark.parametrize(
    ("params", "total"),
    [
        ({"to": "9999-12-31"}, 6),
        ({"from": "0001-01-01"}, 6),
        ({"from": "0001-01-01", "to": "9999-12-31"}, 6),
        ({"from": "9999-12-31", "to": "0001-01-01"}, 6),
        ({"from": "9999-12-31"}, 0),
        ({"to": "0001-01-01"}, 0),
    ],
)
def test_api_dates_at_the_ends_of_the_calendar(client: FlaskClient, params: dict[str, str], total: int) -> None:
    # A query of a date range alone lists every dated document in it.
    response = client.get("/api/search", query_string={"q": "date:..9999", **params})
    assert response.status_code == 200
    assert response.get_json()["total"] == total
    assert client.get("/", query_string=params).status_code == 200


@pytest.mark.parametrize(
    "query_string",
    [
        "q=%ED%A0%80",
        "q=a%ED%A0%80b",
        "q=%00",
        "q=a&source=%00",
        "q=a&tag=%ED%A0%80",
        "q=a&sort=%00",
        "q=a&page=%EF%BC%95",
    ],
)
def test_odd_bytes_in_parameters_are_a_400(client: FlaskClient, query_string: str) -> None:
    for path in ("/api/search", "/", "/api/suggest"):
        response = client.get(f"{path}?{query_string}")
        assert response.status_code in (200, 400), (path, response.status_code)
    assert client.get(f"/api/search?{query_string}").status_code == 400


@pytest.mark.parametrize("value", ["`", '"', "a:b", "(", "NOT", "date:9999", " " * 50, "x" * 100])
def test_odd_filter_values(client: FlaskClient, value: str) -> None:
    for name in ("source", "tag"):
        assert client.get("/api/search", query_string={"q": "飞桨", name: value}).status_code == 200
        assert client.get("/", query_string={name: value}).status_code == 200


# -- the CLI ---------------------------------------------------------------------


@pytest.mark.parametrize("q", ["(" * 1000, "（" * 1000, "NOT " * 1000 + "x", "-(-(-(" * 100, "date:9999", "date:<0001"])
def test_cli_search_survives_hostile_queries(index_dir: Path, q: str) -> None:
    result = CliRunner().invoke(cli, ["search", "--index", str(index_dir), "--", q])
    assert result.exception is None, result.output
    assert result.exit_code == 0
    assert "Traceback" not in result.output
