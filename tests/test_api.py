"""The JSON API through the Flask test client: fields, errors, and the single error shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from service import create_app

RESULT_FIELDS = ["id", "title", "url", "date", "source", "tags", "score", "title_html", "snippet_html"]


def test_search_returns_every_documented_field(client: FlaskClient) -> None:
    resp = client.get("/api/search", query_string={"q": "混合专家"})
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    data = resp.get_json()
    assert list(data) == ["query", "total", "page", "size", "took_ms", "partial", "terms", "facets", "results"]
    assert data["query"] == "混合专家"
    assert data["page"] == 1 and data["size"] == 3
    assert data["total"] == 2
    assert isinstance(data["took_ms"], float)
    first = data["results"][0]
    assert list(first) == RESULT_FIELDS
    assert first["id"] == "moe-intro"
    assert "<mark>混合专家</mark>" in first["snippet_html"]


def test_json_shows_chinese_as_characters(client: FlaskClient) -> None:
    raw = client.get("/api/search", query_string={"q": "飞桨"}).get_data(as_text=True)
    assert "飞桨" in raw and "\\u" not in raw


def test_paging_and_size(client: FlaskClient) -> None:
    data = client.get("/api/search", query_string={"q": "大模型 OR 汽车 OR Python", "size": 2, "page": 2}).get_json()
    assert data["page"] == 2 and data["size"] == 2
    assert len(data["results"]) <= 2


def test_script_is_escaped_in_json(client: FlaskClient) -> None:
    data = client.get("/api/search", query_string={"q": "script"}).get_json()
    snippet = data["results"][0]["snippet_html"]
    assert "<script>" not in snippet and "&lt;<mark>script</mark>&gt;" in snippet


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 400, "missing_query"),
        ({"q": "   "}, 400, "missing_query"),
        ({"q": "飞桨", "page": "abc"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "page": "0"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "page": "-1"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "page": "101"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "size": "0"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "size": "51"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "size": "１０"}, 400, "invalid_parameter"),
        ({"q": "x" * 257}, 400, "query_too_long"),
        ({"q": "飞\x00桨"}, 400, "invalid_query"),
    ],
)
def test_bad_input_gets_a_4xx_in_the_error_shape(
    client: FlaskClient, params: dict[str, str], status: int, code: str
) -> None:
    resp = client.get("/api/search", query_string=params)
    assert resp.status_code == status
    body = resp.get_json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_unknown_parameters_are_ignored(client: FlaskClient) -> None:
    assert client.get("/api/search", query_string={"q": "飞桨", "debug": "1"}).status_code == 200


@pytest.mark.parametrize("q", ['"未闭合', "a)", "(((", "title:", "AND OR NOT", "*", "飞桨~2", "[a TO"])
def test_malformed_syntax_is_never_a_server_error(client: FlaskClient, q: str) -> None:
    assert client.get("/api/search", query_string={"q": q}).status_code == 200


def test_document_lookup(client: FlaskClient) -> None:
    data = client.get("/api/documents/ernie").get_json()
    assert data["title"] == "文心大模型4.5系列宣布开源"
    assert data["tags"] == ["大模型", "开源"]
    assert data["date"] == "2025-06-30"
    assert "PaddlePaddle" in data["body"]
    # Path-based ids contain slashes.
    assert client.get("/api/documents/notes/rust.md").get_json()["id"] == "notes/rust.md"


def test_document_not_found_is_a_json_404(client: FlaskClient) -> None:
    resp = client.get("/api/documents/../../etc/passwd")
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"


def test_unknown_api_path_and_method(client: FlaskClient) -> None:
    resp = client.get("/api/nothing")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    resp = client.post("/api/search", data={"q": "飞桨"})
    assert resp.status_code == 405 and resp.get_json()["error"]["code"] == "method_not_allowed"


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "documents": 8}


def test_missing_index_fails_at_start_up_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="zhsearch build"):
        create_app({"TESTING": True, "INDEX_DIR": str(tmp_path / "none")})
