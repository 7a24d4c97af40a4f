"""The JSON API through the Flask test client: fields, errors, and the single error shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from indexer import PAGE_SIZE_CAP, IndexerError, build_index
from service import create_app

from .conftest import MINI_CORPUS

RESULT_FIELDS = [
    "id",
    "title",
    "url",
    "doc_url",
    "address",
    "date",
    "source",
    "tags",
    "score",
    "title_html",
    "snippet_html",
    "missing",
    "similar",
]
SEARCH_FIELDS = [
    "query",
    "total",
    "total_full",
    "page",
    "size",
    "took_ms",
    "partial",
    "relaxed",
    "terms",
    "facets",
    "results",
    "did_you_mean",
    "has_more",
    "next",
]
SUGGEST_FIELDS = ["text", "pinyin", "documents", "query"]


def test_search_returns_every_documented_field(client: FlaskClient) -> None:
    resp = client.get("/api/search", query_string={"q": "混合专家"})
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    data = resp.get_json()
    assert list(data) == SEARCH_FIELDS
    assert data["query"] == "混合专家"
    assert data["page"] == 1 and data["size"] == 3
    # 混合专家 typed as one run: the article with 混合 and 专家 apart is not a match.
    assert data["total"] == data["total_full"] == 1
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
    # Snippets show the text without its markup; what is left is escaped text.
    assert "<script>" not in snippet and "&lt;script" not in snippet and "alert(&quot;x&quot;)" in snippet


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
        ({"q": "飞\x1b桨"}, 400, "invalid_query"),
        ({"q": "x" * 250 + " " * 7}, 400, "query_too_long"),
        ({"q": "飞桨", "size": "1e3"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "page": "2.5"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "page": "99999999999999999999999"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "sort": "newest"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "from": "2025-13-01"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "from": "2025-02-30"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "to": "20250630"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "to": "2025-6-30"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "source": "x" * 101}, 400, "invalid_parameter"),
        ({"q": "飞桨", "tag": "a\x00b"}, 400, "invalid_parameter"),
        ({"q": "飞桨", "tag": [f"t{i}" for i in range(11)]}, 400, "invalid_parameter"),
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


@pytest.mark.parametrize(
    "raw",
    ["q=%zz", "q=%E9%A3", "q=%FF", "q=abc%", "q=%2", "q=ok&page=%C0%AF"],
)
def test_invalid_percent_encoding_is_a_400(client: FlaskClient, raw: str) -> None:
    resp = client.get("/api/search?" + raw)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_parameter"
    page = client.get("/?" + raw)
    assert page.status_code == 400 and "请求有误" in page.get_data(as_text=True)


def test_query_length_limit_is_named(client: FlaskClient) -> None:
    message = client.get("/api/search", query_string={"q": "飞" * 257}).get_json()["error"]["message"]
    assert "256" in message
    assert client.get("/api/search", query_string={"q": "飞" * 256}).status_code == 200


def test_unknown_parameters_are_ignored(client: FlaskClient) -> None:
    assert client.get("/api/search", query_string={"q": "飞桨", "debug": "1"}).status_code == 200


@pytest.mark.parametrize("q", ['"未闭合', "a)", "(((", "title:", "AND OR NOT", "*", "飞桨~2", "[a TO"])
def test_malformed_syntax_is_never_a_server_error(client: FlaskClient, q: str) -> None:
    assert client.get("/api/search", query_string={"q": q}).status_code == 200


def test_facets_are_counted(client: FlaskClient) -> None:
    data = client.get("/api/search", query_string={"q": "大模型"}).get_json()
    assert data["total"] == 2
    tags = {f["value"]: f["count"] for f in data["facets"]["tags"]}
    sources = {f["value"]: f["count"] for f in data["facets"]["source"]}
    assert tags["大模型"] == 2 and tags["MoE"] == 1 and tags["开源"] == 1
    assert sources == {"模型周刊": 1, "开源观察": 1}


def test_source_and_tag_filters(client: FlaskClient) -> None:
    def ids(**params: object) -> list[str]:
        data = client.get("/api/search", query_string={"q": "大模型", **params}).get_json()
        return [r["id"] for r in data["results"]]

    assert ids(source="开源观察") == ["ernie"]
    assert ids(tag="MoE") == ["moe-intro"]
    # Repeated values are alternatives.
    assert sorted(ids(tag=["MoE", "开源"])) == ["ernie", "moe-intro"]
    assert ids(source="没有这个来源") == []


def test_date_range_is_inclusive(client: FlaskClient) -> None:
    def ids(**params: str) -> list[str]:
        data = client.get("/api/search", query_string={"q": "大模型", **params}).get_json()
        return sorted(r["id"] for r in data["results"])

    assert ids(**{"from": "2025-06-30"}) == ["ernie"]
    assert ids(to="2025-03-02") == ["moe-intro"]
    assert ids(**{"from": "2025-03-02", "to": "2025-06-30"}) == ["ernie", "moe-intro"]
    assert ids(**{"from": "2025-03-03", "to": "2025-06-29"}) == []
    # The wrong way round is read the right way round; the extremes of the calendar work.
    assert ids(**{"from": "2025-06-30", "to": "2025-03-02"}) == ["ernie", "moe-intro"]
    assert ids(**{"from": "0001-01-01", "to": "9999-12-31"}) == ["ernie", "moe-intro"]


def test_sort_by_date_is_newest_first(client: FlaskClient) -> None:
    data = client.get("/api/search", query_string={"q": "大模型 OR 汽车 OR Python", "sort": "date"}).get_json()
    dates = [r["date"] for r in data["results"]]
    assert dates == sorted(dates, reverse=True) and len(dates) == 3


def test_a_filter_alone_lists_its_articles(client: FlaskClient) -> None:
    # As on the page: a tag, source or date range without a query lists the articles it keeps, newest first.
    data = client.get("/api/search", query_string={"tag": "大模型"}).get_json()
    assert data["total"] > 0 and all("大模型" in hit["tags"] for hit in data["results"])
    dates = [hit["date"] for hit in data["results"] if hit["date"]]
    assert dates == sorted(dates, reverse=True)
    # With neither a query nor a filter there is nothing to list.
    resp = client.get("/api/search", query_string={"q": " "})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "missing_query"


def test_terms_show_the_segmented_query(client: FlaskClient) -> None:
    data = client.get("/api/search", query_string={"q": "彗星轨道"}).get_json()
    assert data["total"] == 0 and data["terms"] == ["彗星", "轨道"]
    assert data["partial"] is False


def test_search_time_limit_returns_partial_results(tmp_path: Path) -> None:
    # Enough matching documents that collecting them outlasts a one-microsecond limit.
    corpus = tmp_path / "many.jsonl"
    with open(corpus, "w", encoding="utf-8") as f:
        for i in range(3000):
            f.write(json.dumps({"id": f"d{i}", "title": f"测试文章 {i}", "body": "测试 数据 " * 5}) + "\n")
    build_index([corpus], tmp_path / "index")
    app = create_app({"TESTING": True, "INDEX_DIR": str(tmp_path / "index"), "SEARCH_TIME_LIMIT": 0.000001})
    client = app.test_client()
    data = client.get("/api/search", query_string={"q": "测试"}).get_json()
    assert data["partial"] is True
    html = client.get("/", query_string={"q": "测试"}).get_data(as_text=True)
    assert "部分结果" in html
    unlimited = create_app({"TESTING": True, "INDEX_DIR": str(tmp_path / "index")}).test_client()
    full = unlimited.get("/api/search", query_string={"q": "测试"}).get_json()
    assert full["partial"] is False and full["total"] == 3000


def test_suggest_completes_by_prefix_pinyin_and_initials(client: FlaskClient) -> None:
    def texts(q: str) -> list[str]:
        resp = client.get("/api/suggest", query_string={"q": q})
        assert resp.status_code == 200
        data = resp.get_json()
        assert data["query"] == " ".join(q.split())
        for s in data["suggestions"]:
            assert list(s) == SUGGEST_FIELDS
        return [s["text"] for s in data["suggestions"]]

    assert "混合" in texts("混")
    assert texts("kub") == ["kubernetes"]
    assert "大模型" in texts("dmx")
    assert "大模型" in texts("damox")
    assert "中华人民共和国" in texts("zhrmghg")
    # Composed words are kept only if some title holds them: 大模态 is in none.
    assert "大模态" not in texts("dm") and "多模态" in texts("dm")
    assert texts("   ") == []
    assert texts("dmx ") == []
    assert texts("zzzzzz") == []


def test_suggest_completes_the_last_word_of_the_query(client: FlaskClient) -> None:
    data = client.get("/api/suggest", query_string={"q": "开源 -dmx"}).get_json()
    assert data["suggestions"][0]["query"] == "开源 -大模型"
    data = client.get("/api/suggest", query_string={"q": "title:kub"}).get_json()
    assert data["suggestions"][0]["query"] == "title:kubernetes"
    data = client.get("/api/suggest", query_string={"q": "dmx", "limit": 1}).get_json()
    assert len(data["suggestions"]) == 1 and data["suggestions"][0]["documents"] >= 1


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"q": "x" * 257}, "query_too_long"),
        ({"q": "a\x00"}, "invalid_query"),
        ({"q": "dm", "limit": "0"}, "invalid_parameter"),
        ({"q": "dm", "limit": "21"}, "invalid_parameter"),
        ({"q": "dm", "limit": "x"}, "invalid_parameter"),
    ],
)
def test_suggest_rejects_bad_input(client: FlaskClient, params: dict[str, str], code: str) -> None:
    resp = client.get("/api/suggest", query_string=params)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == code


def test_suggestions_follow_a_rebuilt_index(tmp_path: Path) -> None:
    build_index([MINI_CORPUS], tmp_path / "index")
    app = create_app({"TESTING": True, "INDEX_DIR": str(tmp_path / "index")})
    app.extensions["zhsearch.suggester"].recheck_s = 0
    client = app.test_client()
    assert client.get("/api/suggest", query_string={"q": "hx"}).get_json()["suggestions"] == []
    (tmp_path / "more.jsonl").write_text(json.dumps({"title": "彗星轨道计算", "body": "天文"}) + "\n", encoding="utf-8")
    build_index([MINI_CORPUS, tmp_path / "more.jsonl"], tmp_path / "index")
    # The request that notices the new index starts a rebuild in the background and answers at once.
    assert client.get("/api/suggest", query_string={"q": "hx"}).get_json()["suggestions"] == []
    app.extensions["zhsearch.suggester"].wait(timeout=60)
    assert "彗星" in [s["text"] for s in client.get("/api/suggest", query_string={"q": "hx"}).get_json()["suggestions"]]


def test_cors_is_off_by_default(client: FlaskClient) -> None:
    resp = client.get("/api/search", query_string={"q": "飞桨"}, headers={"Origin": "https://other.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_allows_the_configured_origins(index_dir: Path) -> None:
    app = create_app(
        {"TESTING": True, "INDEX_DIR": str(index_dir), "CORS_ORIGINS": "https://a.example, https://b.example"}
    )
    client = app.test_client()
    resp = client.get("/api/search", query_string={"q": "飞桨"}, headers={"Origin": "https://b.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert "Origin" in resp.headers["Vary"]
    resp = client.get("/api/search", query_string={"q": "飞桨"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    preflight = client.options(
        "/api/suggest", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://a.example"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    # A client that revalidates by ETag sends If-None-Match, which needs the preflight's leave.
    assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"]
    allowed = client.get("/api/search", query_string={"q": "飞桨"}, headers={"Origin": "https://a.example"})
    assert {"Link", "ETag"} <= {h.strip() for h in allowed.headers["Access-Control-Expose-Headers"].split(",")}
    # The HTML page is not part of the API.
    assert "Access-Control-Allow-Origin" not in client.get("/", headers={"Origin": "https://a.example"}).headers
    star = create_app({"TESTING": True, "INDEX_DIR": str(index_dir), "CORS_ORIGINS": ["*"]}).test_client()
    assert star.get("/healthz", headers={"Origin": "https://x.example"}).headers["Access-Control-Allow-Origin"] == "*"


def test_openapi_document_is_served(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {"/api/search", "/api/suggest", "/api/documents/{id}", "/healthz"}
    names = {p["name"] for p in doc["paths"]["/api/search"]["get"]["parameters"]}
    assert names == {"q", "page", "size", "source", "tag", "from", "to", "sort", "mode"}
    assert doc["components"]["schemas"]["SearchPage"]["required"] == SEARCH_FIELDS
    assert doc["components"]["schemas"]["Hit"]["required"] == RESULT_FIELDS


def test_document_lookup(client: FlaskClient) -> None:
    data = client.get("/api/documents/ernie").get_json()
    assert data["title"] == "文心大模型4.5系列宣布开源"
    assert data["tags"] == ["大模型", "开源"]
    assert data["date"] == "2025-06-30"
    assert "PaddlePaddle" in data["body"]
    # Path-based ids contain slashes.
    assert client.get("/api/documents/notes/rust.md").get_json()["id"] == "notes/rust.md"
    # Without a query nothing is marked: the escaped text, and no offsets.
    assert data["title_html"] == data["title"] and data["title_matches"] == data["matches"] == []
    assert data["body_html"].startswith("<p>") and "<mark>" not in data["body_html"]
    doc = client.get("/api/openapi.json").get_json()["components"]["schemas"]["Document"]
    assert list(data) == doc["required"]


def test_document_lookup_marks_the_query(client: FlaskClient) -> None:
    data = client.get("/api/documents/ernie", query_string={"q": "飞桨 -汽车"}).get_json()
    assert "<mark>飞桨</mark>" in data["body_html"]
    assert data["matches"] and all(data["body"][s:e] == "飞桨" for s, e in data["matches"])
    # An excluded word is never marked.
    assert "<mark>汽车</mark>" not in data["body_html"]
    # Ids with slashes, encoded as the results' doc_url encodes them, and the same query rules as /api/search.
    rust = client.get("/api/documents/notes%2Frust.md", query_string={"q": "rust"}).get_json()
    assert rust["title_matches"] == [[0, 4]]
    resp = client.get("/api/documents/ernie", query_string={"q": "a\x00b"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_query"


def test_every_result_has_its_document_page(client: FlaskClient) -> None:
    data = client.get("/api/search", query_string={"q": "大模型 OR Rust", "size": 10}).get_json()
    for hit in data["results"]:
        page = client.get(hit["doc_url"])
        assert page.status_code == 200 and page.mimetype == "text/html", hit["doc_url"]
    urls = {hit["id"]: hit["doc_url"] for hit in data["results"]}
    assert urls["notes/rust.md"] == "/doc/notes%2Frust.md?q=%E5%A4%A7%E6%A8%A1%E5%9E%8B+OR+Rust"


@pytest.mark.parametrize(
    "path",
    [
        "/api/documents/../../etc/passwd",
        "/api/documents/%2e%2e/%2e%2e/etc/passwd",
        "/api/documents//etc/passwd",
        "/api/documents/..%2f..%2fetc%2fpasswd",
        "/api/documents/corpus/README.md",
        "/api/documents/mini_corpus/gpt4o.txt",
    ],
)
def test_documents_cannot_reach_files(client: FlaskClient, path: str) -> None:
    # Werkzeug redirects // to /; the target is looked up like any other id.
    resp = client.get(path, follow_redirects=True)
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"
    assert "root:" not in resp.get_data(as_text=True)


def test_document_ids_with_controls_are_rejected(client: FlaskClient) -> None:
    resp = client.get("/api/documents/a%00b")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_parameter"


def test_unknown_api_path_and_method(client: FlaskClient) -> None:
    resp = client.get("/api/nothing")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    resp = client.post("/api/search", data={"q": "飞桨"})
    assert resp.status_code == 405 and resp.get_json()["error"]["code"] == "method_not_allowed"


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "documents": 8, "warnings": []}


def test_missing_index_fails_at_start_up_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="zhsearch build"):
        create_app({"TESTING": True, "INDEX_DIR": str(tmp_path / "none")})


def test_a_page_size_setting_above_the_library_cap_stops_start_up(index_dir: Path) -> None:
    with pytest.raises(IndexerError, match=f"limit of {PAGE_SIZE_CAP}"):
        create_app({"TESTING": True, "INDEX_DIR": str(index_dir), "MAX_PAGE_SIZE": PAGE_SIZE_CAP + 1})
    app = create_app({"TESTING": True, "INDEX_DIR": str(index_dir), "MAX_PAGE_SIZE": PAGE_SIZE_CAP})
    assert app.test_client().get("/api/search", query_string={"q": "飞桨", "size": PAGE_SIZE_CAP}).status_code == 200
