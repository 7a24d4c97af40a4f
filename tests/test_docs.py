"""The README is a front page; docs/ holds the reference, and each page stays true to the code.

Every setting, API parameter, field and error code is documented on its reference page, every page is
linked from the README, every link and path resolves, and the examples on the pages still work.
"""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click import Command
from flask.testing import FlaskClient

import indexer
import service.config
from indexer.cli import cli
from indexer.corpus import ReadOptions
from service.openapi import openapi_document

from .conftest import ROOT
from .test_api import RESULT_FIELDS, SEARCH_FIELDS, SUGGEST_FIELDS

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md"))}
CLI_DOC = PAGES["cli.md"]
API_DOC = PAGES["api.md"]
SETTINGS_DOC = PAGES["settings.md"]
CORPUS_DOC = PAGES["corpus-formats.md"]
DEFAULTS = {n: getattr(service.config, n) for n in dir(service.config) if n.isupper()}
MAX_README_LINES = 160

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Repository paths named in the text: `indexer/store.py`, `bench/results/`, `.ci/run`.
REPO_PATH = re.compile(r"`((?:indexer|service|bench|tests|docs|corpus|\.ci)(?:/[\w.-]+)*/?)`")
# The example backend of "Adding a backend" does not exist, by design.
HYPOTHETICAL = {"indexer/backends/elasticsearch/"}


def documents() -> dict[Path, str]:
    """README.md and every docs/*.md page, by path."""
    return {ROOT / "README.md": README, **{DOCS / name: text for name, text in PAGES.items()}}


def section(text: str, heading: str) -> str:
    """The body of the section under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    ends = [m.start() for m in re.finditer(r"^(#+) ", text[start:], re.M) if len(m.group(1)) <= len(level)]
    return text[start : start + ends[0]] if ends else text[start:]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def commands() -> dict[str, Command]:
    return dict(cli.commands)


def option_names(command: Command) -> set[str]:
    return {name for param in command.params for name in [*param.opts, *param.secondary_opts]}


# -- the README is a front page --------------------------------------------------


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make serve" in head and "make test" in head


def test_readme_is_a_front_page_not_a_manual() -> None:
    lines = README.count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference text into docs/"


def test_readme_shows_the_page() -> None:
    images = re.findall(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", README)
    assert images
    for image in images:
        path = ROOT / image
        assert path.is_file() and path.stat().st_size < 300_000, image


def test_every_reference_page_is_linked_from_the_readme() -> None:
    assert {"cli.md", "api.md", "corpus-formats.md", "settings.md", "operations.md", "architecture.md"} <= set(PAGES)
    linked = {link.split("#")[0] for link in LINK.findall(README)}
    for name in PAGES:
        assert f"docs/{name}" in linked, f"docs/{name} is not linked from the README"


def test_every_relative_link_resolves() -> None:
    for path, text in documents().items():
        prose = CODE_SPAN.sub("", FENCE.sub("", text))
        for link in LINK.findall(prose):
            if re.match(r"[a-z]+:", link):
                continue  # https:, mailto:
            target, _, anchor = link.partition("#")
            file = (path.parent / target).resolve() if target else path
            where = f"{path.relative_to(ROOT)}: {link}"
            assert file.exists(), f"{where}: no such file"
            assert file.is_relative_to(ROOT), f"{where}: outside the repository"
            if anchor:
                assert file.suffix == ".md", f"{where}: an anchor into a file that is not Markdown"
                assert anchor in anchors(file.read_text(encoding="utf-8")), f"{where}: no such heading"


def test_every_repository_path_named_exists() -> None:
    for path, text in documents().items():
        for name in REPO_PATH.findall(text):
            if name not in HYPOTHETICAL:
                assert (ROOT / name).exists(), f"{path.relative_to(ROOT)} names `{name}`, which does not exist"


def test_the_readme_names_every_dependency_and_why() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = section(README, "## Dependencies and why")
    for requirement in project["dependencies"]:
        name = re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]
        assert re.search(rf"^- `{re.escape(name)}`: \S", listed, re.M), f"README: no reason given for {name}"
        assert f"`{name}" in PAGES["dependencies.md"], name


def test_the_architecture_map_ends_with_adding_a_backend() -> None:
    arch = section(README, "## Architecture").strip()
    last = arch.split("\n\n")[-1]
    assert re.match(r"1\. ", last), "the README's architecture map must end with the adding-a-backend list"
    for name in ["indexer/backends/__init__.py", "tests/test_backends.py", "docs/settings.md", "assert_never"]:
        assert name in last, name
    assert "BACKENDS = [" in (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    assert "BACKENDS" in (ROOT / "tests" / "test_backends.py").read_text(encoding="utf-8")
    assert "backends" in anchors(SETTINGS_DOC)


# -- settings ----------------------------------------------------------------------


def test_every_setting_is_documented() -> None:
    assert DEFAULTS
    for name in DEFAULTS:
        assert f"`ZHSEARCH_{name}`" in SETTINGS_DOC, name


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    names = {
        name
        for package in ("indexer", "service")
        for file in (ROOT / package).rglob("*.py")
        for name in re.findall(r"ZHSEARCH_[A-Z][A-Z_]*[A-Z](?![\w*{])", file.read_text(encoding="utf-8"))
    }
    assert "ZHSEARCH_BACKEND" in names
    for name in sorted(names):
        assert f"`{name}`" in SETTINGS_DOC, name


def test_documented_defaults_are_the_defaults() -> None:
    for name, value in DEFAULTS.items():
        if value not in ("", [], None):
            assert f"| `ZHSEARCH_{name}` | `{value}` |" in SETTINGS_DOC, (name, value)


def test_the_page_size_cap_is_documented() -> None:
    cap = indexer.PAGE_SIZE_CAP
    assert DEFAULTS["MAX_PAGE_SIZE"] <= cap
    assert f"`indexer.PAGE_SIZE_CAP` ({cap})" in SETTINGS_DOC


def code(text: str) -> str:
    """The code blocks and code spans of a page, where commands are written."""
    return "\n".join([*FENCE.findall(text), *CODE_SPAN.findall(text)])


def test_make_targets_and_variables_named_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    variables = set(re.findall(r"^([A-Z_]+) \?=", makefile, re.M))
    for path, text in documents().items():
        for target, assignments in re.findall(r"\bmake ([a-z][\w-]*)((?: [A-Z_]+=\S+)*)", code(text)):
            assert target in targets, f"{path.relative_to(ROOT)}: make {target}"
            for name in re.findall(r"([A-Z_]+)=", assignments):
                assert name in variables, f"{path.relative_to(ROOT)}: make {target} {name}="
    for name in re.findall(r"`([A-Z_]+)`", section(SETTINGS_DOC, "## The Makefile")):
        assert name in variables, name


# -- the command line --------------------------------------------------------------


def test_every_command_is_documented() -> None:
    for name in commands():
        assert f"`zhsearch {name}" in CLI_DOC, name
        assert f"zhsearch {name}" in README, name


def test_options_in_the_command_tables_exist() -> None:
    rows = re.findall(r"^\| `zhsearch (\w+)([^`]*)` \|", CLI_DOC, re.M)
    assert len(rows) == len(commands())
    for name, usage in rows:
        for option in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage):
            assert option in option_names(commands()[name]), (name, option)
    table = section(CLI_DOC, "## Options of `build`, `add` and `sync`")
    options = re.findall(r"^\| ((?:`[^`]+`(?:, )?)+) \|", table, re.M)
    assert options
    for cell in options:
        for option in re.findall(r"`(--?[a-z][a-z-]*)", cell):
            for name in ("build", "add", "sync"):
                assert option in option_names(commands()[name]), (name, option)


# -- the HTTP API ------------------------------------------------------------------


def test_every_api_field_is_documented() -> None:
    for name in [*SEARCH_FIELDS, *RESULT_FIELDS, *SUGGEST_FIELDS, "suggestions"]:
        assert f"`{name}`" in API_DOC, name


def test_every_api_parameter_is_documented() -> None:
    doc = openapi_document(DEFAULTS)
    for path, item in doc["paths"].items():
        assert f"`GET {path.replace('{id}', '<id>')}" in API_DOC, path
        for param in item["get"].get("parameters", []):
            if param["in"] == "query":
                assert f"`{param['name']}`" in API_DOC, (path, param["name"])


def test_every_error_code_is_documented() -> None:
    codes = openapi_document(DEFAULTS)["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    for code in codes["enum"]:
        assert f"`{code}`" in API_DOC, code


def test_the_api_page_links_the_openapi_document_and_shows_the_page() -> None:
    assert "/api/openapi.json" in API_DOC
    assert re.search(r"!\[[^\]]+\]\(screenshot-results\.png\)", API_DOC)


def json_examples() -> list[dict[str, object]]:
    return [json.loads(block) for block in re.findall(r"^```json\n(.*?)^```", API_DOC, re.S | re.M)]


def test_the_response_examples_have_the_documented_shape() -> None:
    search, suggest = (e for e in json_examples() if "suggestions" in e or "results" in e)
    assert list(search) == SEARCH_FIELDS
    assert all(list(hit) == RESULT_FIELDS for hit in search["results"])  # type: ignore[attr-defined]
    assert list(suggest) == ["query", "suggestions"]
    assert all(list(s) == SUGGEST_FIELDS for s in suggest["suggestions"])  # type: ignore[attr-defined]


def test_the_error_example_is_what_the_service_answers(client: FlaskClient) -> None:
    (example,) = (e for e in json_examples() if "error" in e)
    resp = client.get("/api/search", query_string={"q": "长" * (DEFAULTS["MAX_QUERY_CHARS"] + 1)})
    assert resp.status_code == 400
    assert resp.get_json() == example


# -- corpus formats ----------------------------------------------------------------


def test_every_format_example_is_read(tmp_path: Path) -> None:
    formats = CORPUS_DOC[: CORPUS_DOC.index("## Encodings and problems")]
    examples = re.findall(r"```(\w+)\n(.*?)```", formats, re.S)
    assert [lang for lang, _ in examples] == ["json", "json", "csv", "markdown", "text", "html"]
    names = ["news.jsonl", "export.json", "export.csv", "post.md", "note.txt", "page.html"]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, (_, code) in zip(names, examples, strict=True):
        (corpus / name).write_text(code, encoding="utf-8")
    # The CSV example's command line maps these fields.
    mapping = dict(re.findall(r"--field (\w+)=(\w+)", re.search(r"`zhsearch build export\.csv[^`]*`", formats)[0]))  # type: ignore[index]
    assert mapping == {"title": "headline", "body": "content", "date": "published", "tags": "keywords"}
    got = list(indexer.iter_records([corpus], ReadOptions(fields=mapping)))
    assert all(isinstance(r, indexer.Article) for r in got), [r for r in got if isinstance(r, indexer.Skipped)]
    by_file = {r.where.split(":")[0]: r for r in got if isinstance(r, indexer.Article)}
    assert sorted(by_file) == sorted(names)
    assert by_file["export.json"].tags == ("数据库", "开源")
    assert by_file["export.csv"].tags == ("芯片", "RISC-V")
    assert by_file["post.md"].tags == ("数据库", "开源", "数据分析")
    assert by_file["post.md"].url == "https://oss.example.org/2024/06/duckdb-1-0"
    page = by_file["page.html"]
    assert "KV缓存" in page.body and "Docker" not in page.body and "首页" not in page.body
    assert page.url == "https://notes.example.com/2025/03/long-context-cost"


# -- the library API ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "params", "documented"),
    [
        (
            indexer.store_settings,
            ["index_dir", "backend", "environ"],
            "store_settings(index_dir=None, backend=None, environ=None)",
        ),
        (indexer.build_index, ["paths", "index"], "build_index(paths, index)"),
        (indexer.Searcher, ["index"], "Searcher(index)"),
        (indexer.open_store, ["index"], "open_store(index)"),
    ],
)
def test_the_library_api_is_as_documented(function: Callable[..., object], params: list[str], documented: str) -> None:
    signature = inspect.signature(function)
    assert list(signature.parameters)[: len(params)] == params
    assert function is indexer.store_settings or "backend" not in signature.parameters
    for page in ("architecture.md", "settings.md"):
        assert documented in " ".join(PAGES[page].split()), (page, documented)
