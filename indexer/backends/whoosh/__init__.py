"""The embedded Whoosh backend: an index on local disk, in generations swapped atomically.

``store`` reads and writes index generations, ``query`` compiles zhsearch's
query tree into Whoosh queries, ``scoring`` holds the BM25 shortcuts, and
``schema`` and ``tokenizers`` are the on-disk format Whoosh pickles.
"""

from __future__ import annotations

from .store import WhooshSettings, WhooshStore

__all__ = ["Settings", "WhooshSettings", "WhooshStore", "open_store"]

Settings = WhooshSettings


def open_store(settings: WhooshSettings) -> WhooshStore:
    """Open (or prepare to create) the Whoosh index that ``settings`` names."""
    return WhooshStore(settings)
