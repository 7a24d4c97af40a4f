"""Dates keep the UTC offset they were written with, sort by their instant, and filter by the day as written.

Each case runs on Whoosh and, with ``make test-cluster``, on a real Typesense cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from indexer import Article, build_index, store_settings
from indexer.corpus import parse_date, utc_instant
from indexer.search import format_date
from service import create_app

from .conftest import BACKENDS, backend_environment

# Written so that the order by wall clock (beijing, denver, plain) differs from the order by instant.
ARTICLES = [
    # 2023-03-31T00:00:00Z
    {"id": "beijing", "date": "2023-03-31T08:00:00+08:00"},
    # 2023-03-31T01:14:59Z: the newest instant, though its wall clock is the earliest day but one.
    {"id": "denver", "date": "2023-03-30T19:14:59-06:00"},
    # No offset: taken as UTC for sorting, 2023-03-30T00:00:00Z.
    {"id": "plain", "date": "2023-03-30"},
    {"id": "undated"},
]
NEWEST_FIRST = ["denver", "beijing", "plain", "undated"]


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("2023-03-30T19:14:59-06:00", "2023-03-30T19:14:59-06:00"),
        ("2025-06-30T00:00:00+08:00", "2025-06-30T00:00:00+08:00"),
        ("2025-06-30T08:00:00.250+05:30", "2025-06-30T08:00:00.250000+05:30"),
        ("2023-03-30T19:14:59Z", "2023-03-30T19:14:59+00:00"),
        ("2025-06-30T08:00:00", "2025-06-30T08:00:00"),
        ("2025-06-30", "2025-06-30"),
        ("2025年6月30日", "2025-06-30"),
    ],
)
def test_a_date_is_shown_with_its_offset_as_written(written: str, shown: str) -> None:
    assert format_date(parse_date(written)) == shown


def test_an_aware_datetime_keeps_its_offset_and_its_instant() -> None:
    # What YAML front matter yields for `date: 2023-03-30T19:14:59-06:00`.
    value = datetime(2023, 3, 30, 19, 14, 59, tzinfo=timezone(timedelta(hours=-6)))
    parsed = parse_date(value)
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=-6)
    assert utc_instant(parsed) == datetime(2023, 3, 31, 1, 14, 59)
    assert utc_instant(datetime(2023, 3, 30)) == datetime(2023, 3, 30)


def test_a_date_whose_instant_is_outside_the_calendar_is_not_a_date() -> None:
    with pytest.raises(ValueError, match="outside the calendar"):
        parse_date("0001-01-01T00:00:00+08:00")
    assert parse_date("0001-01-01T00:00:00") == datetime(1, 1, 1)


def test_the_content_hash_changes_with_the_offset() -> None:
    # Only the offset changed: sync must see the article as changed.
    a = Article(id="x", title="t", body="b", date=parse_date("2023-03-30T19:14:59-06:00"))
    b = Article(id="x", title="t", body="b", date=parse_date("2023-03-30T19:14:59+08:00"))
    assert a.content_hash() != b.content_hash()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend name, with ZHSEARCH_BACKEND (and the cluster's settings) in the environment."""
    with backend_environment(request, "zhsearch_test_dates") as name:
        yield name


@pytest.fixture(scope="module")
def built(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of ARTICLES, all about 时区."""
    tmp = tmp_path_factory.mktemp(f"dates-{backend}")
    corpus = tmp / "dated.jsonl"
    with open(corpus, "w", encoding="utf-8") as f:
        for record in ARTICLES:
            body = f"时区测试文章，编号{record['id']}，发布时间的时区各不相同。"
            f.write(json.dumps({**record, "title": f"时区{record['id']}", "body": body}, ensure_ascii=False) + "\n")
    out = tmp / "index"
    stats = build_index([corpus], store_settings(out, backend))
    assert stats.indexed == len(ARTICLES), stats.skipped
    return out


@pytest.fixture
def client(backend: str, built: Path) -> Iterator[FlaskClient]:
    app = create_app({"TESTING": True, "INDEX_DIR": str(built), "PER_PAGE": 10})
    searcher = app.extensions["zhsearch.searcher"]
    assert searcher.store.backend == backend
    yield app.test_client()
    searcher.close()


def search(client: FlaskClient, **params: str) -> dict[str, Any]:
    resp = client.get("/api/search", query_string={"q": "时区", **params})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    data: dict[str, Any] = resp.get_json()
    return data


def ids(data: dict[str, Any]) -> list[str]:
    return [r["id"] for r in data["results"]]


def test_the_api_returns_dates_as_written(client: FlaskClient) -> None:
    dates = {r["id"]: r["date"] for r in search(client)["results"]}
    assert dates == {
        "beijing": "2023-03-31T08:00:00+08:00",
        "denver": "2023-03-30T19:14:59-06:00",
        "plain": "2023-03-30",
        "undated": None,
    }
    doc = client.get("/api/documents/denver").get_json()
    assert doc["date"] == "2023-03-30T19:14:59-06:00"


def test_newest_first_follows_the_instant_across_offsets(client: FlaskClient) -> None:
    assert ids(search(client, sort="date")) == NEWEST_FIRST
    # The same when the query has more than one part to plan (an exclusion that removes nothing).
    assert ids(search(client, q="时区 -不存在的词", sort="date")) == NEWEST_FIRST


def test_oldest_first_follows_the_instant_and_keeps_undated_articles_last(client: FlaskClient) -> None:
    oldest_first = [*reversed(NEWEST_FIRST[:-1]), "undated"]
    assert ids(search(client, sort="oldest")) == oldest_first
    # A filter alone (no words to rank by) lists in the same order.
    resp = client.get("/api/search", query_string={"source": "", "from": "2000-01-01", "sort": "oldest"})
    assert ids(resp.get_json()) == oldest_first[:-1]


def test_the_expected_order_is_the_instant_order_not_the_wall_clock_order() -> None:
    dated = [(a["id"], parse_date(a["date"])) for a in ARTICLES if "date" in a]
    by_instant = sorted(dated, key=lambda item: utc_instant(item[1]), reverse=True)  # type: ignore[arg-type]
    by_wall_clock = sorted(dated, key=lambda item: item[1].replace(tzinfo=None), reverse=True)  # type: ignore[union-attr]
    assert [i for i, _ in by_instant] == NEWEST_FIRST[:-1]
    assert [i for i, _ in by_wall_clock] != NEWEST_FIRST[:-1]


def test_a_date_filter_matches_the_day_as_written(client: FlaskClient) -> None:
    # denver is 2023-03-31 in UTC, but it says 2023-03-30: the filter goes by what it says.
    assert sorted(ids(search(client, q="时区 date:2023-03-30"))) == ["denver", "plain"]
    assert ids(search(client, q="时区 date:2023-03-31")) == ["beijing"]
    assert sorted(ids(search(client, **{"from": "2023-03-30", "to": "2023-03-30"}))) == ["denver", "plain"]
    assert ids(search(client, **{"from": "2023-03-31"})) == ["beijing"]
    assert sorted(ids(search(client, q="时区 date:2023-03"))) == ["beijing", "denver", "plain"]
