"""Query-time synonyms (the user dictionary lives in ``indexer.analysis``).

**Synonyms** are expanded when a query is run, so editing the file needs no
re-index, and a running service notices the change within a second or two.
Set the file with ``ZHSEARCH_SYNONYMS``. One group per line, members
separated by commas (``,`` ``，`` ``、``) or semicolons; ``#`` starts a
comment::

    飞桨, PaddlePaddle
    大模型, LLM, 大语言模型
    混合专家, MoE
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from .analysis import normalize

SYNONYMS_ENV = "ZHSEARCH_SYNONYMS"
# How often a running process looks at the synonyms file's modification time.
RELOAD_CHECK_S = 1.0

_SPLIT_RE = re.compile(r"[,，、;；]")


def parse_synonyms(text: str) -> dict[str, tuple[str, ...]]:
    """Map each folded member of every group to the whole group (members as written)."""
    groups: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        members = [" ".join(m.split()) for m in _SPLIT_RE.split(line)]
        members = [m for m in members if m]
        if len(members) < 2:
            continue
        group = tuple(dict.fromkeys(members))
        for member in group:
            key = normalize(member)
            # A word in several groups gets the union of them.
            groups[key] = tuple(dict.fromkeys(groups.get(key, ()) + group))
    return groups


class Synonyms:
    """Synonym groups from a file, reloaded when the file changes."""

    def __init__(self, path: str | Path | None = None) -> None:
        chosen = str(path) if path else os.environ.get(SYNONYMS_ENV, "")
        self.path = Path(chosen) if chosen else None
        self._groups: dict[str, tuple[str, ...]] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._groups, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        try:
            with open(self.path, encoding="utf-8-sig") as f:
                self._groups = parse_synonyms(f.read())
        except (OSError, UnicodeDecodeError):
            # Keep the last good groups rather than failing every query.
            return
        self._mtime = mtime

    def lookup(self, text: str) -> tuple[str, ...]:
        """The synonym group of ``text`` (folded, whitespace-collapsed), or ()."""
        if self.path is not None:
            now = time.monotonic()
            if now - self._checked >= RELOAD_CHECK_S:
                with self._lock:
                    self._checked = now
                    self._reload()
        return self._groups.get(normalize(" ".join(text.split())), ())
