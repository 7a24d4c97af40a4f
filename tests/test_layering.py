"""The architecture holds: which package may import which, checked over every file of every subpackage."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import indexer

from .conftest import ROOT

INDEXER = ROOT / "indexer"
BACKENDS = INDEXER / "backends"
# The one module outside the Whoosh backend's package that may name Whoosh:
# none. The tokenizer adapter lives in the package and is re-exported lazily.
WHOOSH_PACKAGE = BACKENDS / "whoosh"


def _sources(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, anywhere in it (function bodies too), relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            # ``from . import tokenizers`` imports a submodule.
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _backend_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["indexer", "backends"] else None


def _backends() -> list[str]:
    return sorted(p.name for p in BACKENDS.iterdir() if (p / "__init__.py").is_file())


def test_the_walk_sees_every_subpackage() -> None:
    folders = {p.parent.relative_to(INDEXER).as_posix() for p in _sources(INDEXER)}
    assert {"readers", "backends", "backends/whoosh", "backends/typesense"} <= folders
    assert {"whoosh", "typesense"} <= set(_backends())


def test_the_seam_names_no_backend() -> None:
    imported = set(_imports(INDEXER / "store.py"))
    assert not {m for m in imported if m.startswith("indexer.backends")}, imported
    text = (INDEXER / "store.py").read_text(encoding="utf-8").lower()
    for name in _backends():
        assert name not in text, f"store.py mentions {name}"


def test_no_backend_imports_another() -> None:
    for path in _sources(BACKENDS):
        own = _backend_of(_module_name(path))
        if own is None:
            continue
        for module in _imports(path):
            other = _backend_of(module)
            assert other in (None, own), f"{path.relative_to(ROOT)} imports {module}"


def test_only_the_whoosh_backend_imports_whoosh() -> None:
    for path in _sources(INDEXER, ROOT / "service"):
        if WHOOSH_PACKAGE in path.parents:
            continue
        for module in _imports(path):
            assert module.split(".")[0] != "whoosh", f"{path.relative_to(ROOT)} imports {module}"


def test_the_cli_and_the_typesense_backend_run_without_whoosh() -> None:
    code = (
        "import sys, indexer, indexer.cli, indexer.backends.typesense; "
        "from indexer import store_settings, open_store; "
        "s = store_settings(backend='typesense', environ={'ZHSEARCH_TYPESENSE_API_KEY': 'k'}); "
        "open_store(s).close(); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'whoosh'); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_old_indexes_still_find_the_pickled_tokenizer() -> None:
    # Whoosh pickles the tokenizer as indexer.analysis.ChineseTokenizer; the name must resolve.
    from indexer.analysis import BigramTokenizer, ChineseTokenizer
    from indexer.backends.whoosh import tokenizers

    assert ChineseTokenizer is tokenizers.ChineseTokenizer and BigramTokenizer is tokenizers.BigramTokenizer
    assert ChineseTokenizer.__module__ == BigramTokenizer.__module__ == "indexer.analysis"


def test_indexer_does_not_import_flask() -> None:
    for path in _sources(INDEXER):
        for module in _imports(path):
            assert module.split(".")[0] != "flask", f"{path.relative_to(ROOT)} imports {module}"
    code = "import indexer, indexer.cli, indexer.server, sys; assert 'flask' not in sys.modules, 'flask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_bench_never_imports_tests() -> None:
    for path in _sources(ROOT / "bench"):
        for module in _imports(path):
            root = module.split(".")[0]
            assert root not in ("tests", "conftest"), f"{path.relative_to(ROOT)} imports {module}"


def test_service_imports_only_public_indexer_names() -> None:
    for path in _sources(ROOT / "service"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("indexer"):
                assert node.module == "indexer", f"{path.name} imports {node.module}"
                for alias in node.names:
                    assert alias.name in indexer.__all__, f"{path.name} uses private {alias.name}"


def test_every_source_file_opens_text_with_an_encoding() -> None:
    for path in _sources(INDEXER, ROOT / "service"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                mode = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else "r"
                if "b" in str(mode):
                    continue
                assert any(k.arg == "encoding" for k in node.keywords), f"{path.relative_to(ROOT)}:{node.lineno}"


def test_public_functions_have_docstrings() -> None:
    for path in _sources(INDEXER, ROOT / "service"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                assert ast.get_docstring(node), f"{path.relative_to(ROOT)}: {node.name} has no docstring"
