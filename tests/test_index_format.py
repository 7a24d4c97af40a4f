"""An index written by an earlier zhsearch opens, or is refused with a message saying how to fix it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from indexer import SCHEMA_VERSION, SchemaMismatchError, Searcher
from indexer.analysis import ANALYZER_VERSION

from .conftest import DATA

# Built from tests/data/mini_corpus by zhsearch at e9c6599, before the backends
# moved into packages (the tokenizer was then defined in indexer/analysis.py).
OLD_INDEX = DATA / "index-format-5.2"
OLD_FORMAT = "5.2"


@pytest.fixture
def old_index(tmp_path: Path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(OLD_INDEX, copy, symlinks=True)
    return copy


def test_the_old_index_searches_alike_or_is_refused_once_the_format_moved_on(old_index: Path) -> None:
    s = Searcher(old_index)
    if SCHEMA_VERSION != OLD_FORMAT:
        # The analyzer changed since (5.3: .NET after a Chinese character), and the fields (6: dates keep
        # their offset and sort by instant): the index must be rebuilt.
        try:
            with pytest.raises(SchemaMismatchError, match=rf"uses format {OLD_FORMAT}.*zhsearch build"):
                s.search("混合专家")
        finally:
            s.close()
        return
    try:
        assert s.info().documents == 8
        page = s.search("混合专家")
        assert page.hits and page.hits[0].id == "moe-intro"
        assert "<mark>混合专家</mark>" in page.hits[0].snippet_html
    finally:
        s.close()


# Format 5 stored dates without their offset (and sorted by wall clock): reading one would show them
# wrong. It is written with the current analyzer and the fields of format 5.
@pytest.mark.parametrize("written", ["0.0", f"5.{ANALYZER_VERSION}"], ids=["unknown", "before-dates-kept-offsets"])
def test_an_index_of_another_format_is_refused_with_the_fix(old_index: Path, written: str) -> None:
    assert written != SCHEMA_VERSION
    meta = next(old_index.glob("gen-*")) / "zhsearch.json"
    meta.write_text(meta.read_text(encoding="utf-8").replace(f'"{OLD_FORMAT}"', f'"{written}"'), encoding="utf-8")
    s = Searcher(old_index)
    try:
        with pytest.raises(SchemaMismatchError, match=rf"uses format {re.escape(written)}.*zhsearch build"):
            s.search("混合专家")
    finally:
        s.close()
