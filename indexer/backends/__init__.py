"""The registry of index backends: each name and the package that implements it.

A backend package exports ``Settings`` (a frozen dataclass with a
``backend`` name and ``from_env(environ, index_dir)``) and
``open_store(settings)``, which returns an ``indexer.store.IndexStore``.
Packages are imported only when chosen, so a deployment on one backend never
loads another's engine (choosing Typesense never imports Whoosh).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TypeAlias

from ..errors import IndexerError
from ..store import IndexStore, StoreSettings

# Name -> package; adding a backend adds one line here.
_PACKAGES = {
    "whoosh": "indexer.backends.whoosh",
    "typesense": "indexer.backends.typesense",
}
BACKENDS = tuple(_PACKAGES)
DEFAULT_BACKEND = "whoosh"
# Chooses the backend for the CLI and the web service.
BACKEND_ENV = "ZHSEARCH_BACKEND"

# Where an index is: a backend's settings, or the directory of a local index (the default backend).
IndexTarget: TypeAlias = StoreSettings | str | os.PathLike[str]


def _package(name: str) -> ModuleType:
    if name not in _PACKAGES:
        raise IndexerError(f"unknown index backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return importlib.import_module(_PACKAGES[name])


def store_settings(
    index_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreSettings:
    """The settings of the backend named (else ``ZHSEARCH_BACKEND``, else Whoosh), read from ``environ``.

    ``index_dir`` is the CLI's ``--index`` or the service's ``INDEX_DIR``;
    only a backend that keeps its index on local disk uses it.
    """
    env = os.environ if environ is None else environ
    chosen = (backend or env.get(BACKEND_ENV, "") or DEFAULT_BACKEND).strip()
    settings: StoreSettings = _package(chosen).Settings.from_env(env, Path(index_dir) if index_dir else None)
    return settings


def as_settings(index: IndexTarget) -> StoreSettings:
    """``index`` itself when it is settings; a path names a local index of the default backend."""
    if isinstance(index, str | os.PathLike):
        return store_settings(index_dir=index, backend=DEFAULT_BACKEND, environ={})
    return index


def open_store(index: IndexTarget) -> IndexStore:
    """Open the index that ``index`` names (it may not exist yet: ``build`` creates it)."""
    settings = as_settings(index)
    store: IndexStore = _package(settings.backend).open_store(settings)
    return store
