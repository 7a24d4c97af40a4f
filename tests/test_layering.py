"""The core library never pulls in Flask; the service uses only indexer's public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import indexer

from .conftest import ROOT


def test_indexer_does_not_import_flask() -> None:
    code = "import indexer, indexer.cli, indexer.server, sys; assert 'flask' not in sys.modules, 'flask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_service_imports_only_public_indexer_names() -> None:
    for path in (ROOT / "service").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("indexer"):
                assert node.module == "indexer", f"{path.name} imports {node.module}"
                for alias in node.names:
                    assert alias.name in indexer.__all__, f"{path.name} uses private {alias.name}"


def test_every_source_file_opens_text_with_an_encoding() -> None:
    for path in list((ROOT / "indexer").glob("*.py")) + list((ROOT / "service").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                mode = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else "r"
                if "b" in str(mode):
                    continue
                assert any(k.arg == "encoding" for k in node.keywords), f"{path.name}:{node.lineno}"


def test_public_functions_have_docstrings() -> None:
    for path in list(Path(ROOT / "indexer").glob("*.py")) + list(Path(ROOT / "service").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                assert ast.get_docstring(node), f"{path.name}: {node.name} has no docstring"
