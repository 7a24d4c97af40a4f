"""The README documents every setting, API parameter and field, and shows the page."""

from __future__ import annotations

import re

import service.config
from service.openapi import openapi_document

from .conftest import ROOT
from .test_api import RESULT_FIELDS, SEARCH_FIELDS, SUGGEST_FIELDS

README = (ROOT / "README.md").read_text(encoding="utf-8")
DEFAULTS = {n: getattr(service.config, n) for n in dir(service.config) if n.isupper()}


def test_every_setting_is_documented() -> None:
    assert DEFAULTS
    for name in DEFAULTS:
        assert f"ZHSEARCH_{name}" in README, name


def test_every_api_field_is_documented() -> None:
    for name in [*SEARCH_FIELDS, *RESULT_FIELDS, *SUGGEST_FIELDS, "suggestions"]:
        assert f"`{name}`" in README, name


def test_every_api_parameter_is_documented() -> None:
    doc = openapi_document(DEFAULTS)
    for path, item in doc["paths"].items():
        assert f"`GET {path.replace('{id}', '<id>')}" in README, path
        for param in item["get"].get("parameters", []):
            if param["in"] == "query":
                assert f"`{param['name']}`" in README, (path, param["name"])


def test_every_error_code_is_documented() -> None:
    codes = openapi_document(DEFAULTS)["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    for code in codes["enum"]:
        if code not in ("bad_request", "too_large", "uri_too_long", "headers_too_large", "http_error"):
            assert f"`{code}`" in README, code


def test_readme_links_the_openapi_document_and_shows_the_page() -> None:
    assert "/api/openapi.json" in README
    images = re.findall(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", README)
    assert images
    for image in images:
        path = ROOT / image
        assert path.is_file() and path.stat().st_size < 300_000, image


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make serve" in head and "make test" in head
