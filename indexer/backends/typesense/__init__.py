"""The Typesense cluster backend: replicas for read capacity and availability.

``store`` is the ``IndexStore`` and its settings, ``client`` the HTTP client
with retries and node health, ``documents`` the document layout, and
``query`` the compiler from zhsearch's query tree to Typesense's filter and
ranking. Nothing here imports Whoosh.
"""

from __future__ import annotations

from .client import API_KEY_ENV, COLLECTION_ENV, NODES_ENV
from .store import TypesenseSettings, TypesenseStore

__all__ = [
    "API_KEY_ENV",
    "COLLECTION_ENV",
    "NODES_ENV",
    "Settings",
    "TypesenseSettings",
    "TypesenseStore",
    "open_store",
]

Settings = TypesenseSettings


def open_store(settings: TypesenseSettings) -> TypesenseStore:
    """Connect to the cluster that ``settings`` names (no request is sent until the store is used)."""
    return TypesenseStore(settings)
