"""The README documents every setting, API field and corpus format."""

from __future__ import annotations

import service.config

from .conftest import ROOT
from .test_api import RESULT_FIELDS

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    names = [n for n in dir(service.config) if n.isupper()]
    assert names
    for name in names:
        assert f"ZHSEARCH_{name}" in README, name


def test_every_api_field_is_documented() -> None:
    for name in ["query", "total", "page", "size", "took_ms", "results", *RESULT_FIELDS]:
        assert f"`{name}`" in README, name


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make serve" in head and "make test" in head
