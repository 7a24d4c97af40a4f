"""HTTP done properly: compression, ETags that follow the index, 304s, paging links, versioned static files."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import brotli
from flask import Flask
from flask.testing import FlaskClient

from indexer import add_documents, build_index
from service import create_app


def _docs(path: Path, ids: range) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {"id": f"d{i}", "title": f"容器编排第{i}讲", "body": "容器编排与调度。" * 80}, ensure_ascii=False
            )
            + "\n"
            for i in ids
        ),
        encoding="utf-8",
    )
    return path


def _app(tmp_path: Path) -> tuple[Flask, Path]:
    index = tmp_path / "index"
    build_index([_docs(tmp_path / "a.jsonl", range(12))], index)
    app = create_app({"TESTING": True, "INDEX_DIR": str(index)})
    return app, index


def test_json_and_html_are_compressed_when_the_client_accepts_it(client: FlaskClient) -> None:
    for url in ("/api/search?q=大模型", "/?q=大模型"):
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert plain.headers.get("Content-Encoding") is None
        br = client.get(url, headers={"Accept-Encoding": "br, gzip"})
        assert br.headers["Content-Encoding"] == "br" and "Accept-Encoding" in br.headers["Vary"]
        gz = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert gz.headers["Content-Encoding"] == "gzip"
        for body in (brotli.decompress(br.data), gzip.decompress(gz.data)):
            # The same answer but for its timing.
            assert _untimed(body) == _untimed(plain.data)
        assert len(br.data) < len(plain.data)


def _untimed(body: bytes) -> str:
    return re.sub(r'"took_ms":[0-9.]+|用时 [0-9.]+ 毫秒', "", body.decode("utf-8"))


def test_an_etag_gives_304_until_the_index_changes(tmp_path: Path) -> None:
    app, index = _app(tmp_path)
    app.extensions["zhsearch.generation"].recheck_s = 0  # see every change at once
    client = app.test_client()
    first = client.get("/api/search?q=容器", headers={"Accept-Encoding": "identity"})
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"
    again = client.get("/api/search?q=容器", headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    # An encoded answer has its own tag, and sending it back is a 304 too.
    br = client.get("/api/search?q=容器", headers={"Accept-Encoding": "br"})
    assert br.headers["ETag"] != etag
    assert (
        client.get(
            "/api/search?q=容器", headers={"Accept-Encoding": "br", "If-None-Match": br.headers["ETag"]}
        ).status_code
        == 304
    )
    # Another query is another answer.
    other = client.get("/api/search?q=调度", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    # Adding articles changes the answer, and so its tag.
    add_documents([_docs(tmp_path / "b.jsonl", range(12, 15))], index)
    after = client.get("/api/search?q=容器", headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag
    assert after.get_json()["total"] == first.get_json()["total"] + 3


def test_has_more_and_next_walk_every_page(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    client = app.test_client()
    url: str | None = "/api/search?q=容器&size=5"
    seen: list[str] = []
    while url:
        data = client.get(url).get_json()
        seen += [hit["id"] for hit in data["results"]]
        assert data["has_more"] == (data["next"] is not None)
        url = data["next"]
    assert sorted(seen) == sorted(f"d{i}" for i in range(12))
    past = client.get("/api/search?q=容器&size=5&page=9").get_json()
    assert past["results"] == [] and past["has_more"] is False and past["next"] is None


def test_a_page_past_the_end_shows_the_last_page(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)
    html = app.test_client().get("/?q=容器&size=5&page=50").get_data(as_text=True)
    assert "第 3/3 页" in html and "page=49" not in html and html.count('class="hit"') == 2


def test_static_files_have_versioned_long_lived_urls(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    start = html.index("/static/style.css?v=")
    url = html[start : html.index('"', start)]
    with client.get(url) as resp:
        assert resp.status_code == 200 and "immutable" in resp.headers["Cache-Control"]
        assert "max-age=31536000" in resp.headers["Cache-Control"]
