"""Chinese text analysis for the index: normalisation, jieba segmentation, identifiers.

This module is part of the on-disk index format: any change to the tokens it
produces must bump ``ANALYZER_VERSION`` (which ``indexer.schema`` folds into
the schema version). It imports no search engine. Whoosh pickles its
tokenizer adapter into every index as ``indexer.analysis.ChineseTokenizer``
(and ``BigramTokenizer``); the adapters live in
``indexer.backends.whoosh.tokenizers`` and are re-exported here lazily, so
those names keep resolving for indexes built before and after.

How text becomes tokens:

1. Normalise each character without changing the length of the text:
   full-width forms become half-width (NFKC), letters are lowercased, and
   traditional characters are folded to simplified ones (OpenCC's t2s table,
   applied one character at a time). The normalised string has the same
   length as the original, so token offsets point into the original text and
   highlighting stays exact.
2. Split the normalised text into runs of Han characters and runs of
   "identifiers" (letters and digits joined by ``.``, ``-`` or ``_``, such as
   ``v2.7.4``, ``qwen2.5-vl-32b``, ``c++``, ``.net``). Everything else
   (spaces, punctuation) separates tokens and is dropped.
3. Han runs go to jieba in precise mode. Each precise word takes one ordinal
   position. At index time the dictionary words inside a long word (what
   jieba's search mode adds) are emitted at the *same* position as their
   parent, so 人民 finds 中华人民共和国 while phrase queries still see one
   token per position.
4. An identifier is emitted whole, plus its parts (split on ``-``/``_``, then
   on ``.``, then between letters and digits), so ``ERNIE-4.5-VL-28B-A3B`` is
   found by ``ernie 4.5`` and by ``a3b``. The finest parts take successive
   positions, so ``Python3`` also matches the phrase ``"python 3"``.

Query-time analysis (``mode="query"``) uses precise mode and whole
identifiers only, so a query term never matches a fragment it did not ask for.

The user dictionary (``ZHSEARCH_USER_DICT``) is jieba's format, one
``word [frequency] [tag]`` per line. Its words are folded like all text, so
``K8S集群`` and ``k8s集群`` are one entry. Only runs of Chinese characters go
to jieba, so an entry mixing Latin letters and Chinese has no effect. The
dictionary changes segmentation, so an index records which one (by SHA-256)
it was built with.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba
import opencc

from .errors import IndexerError

# Bump when the tokens produced for a given text change: old indexes must be
# rebuilt, and the schema version check tells the operator so.
ANALYZER_VERSION = 3

# Query-time stop words. They are still indexed (so phrases containing them
# match exactly) but are not required when a query is split into terms.
# The question words of a typed question name what is asked for, not what the
# answer's text contains.
QUESTION_WORDS = frozenset(
    "什么 哪里 哪儿 哪个 哪些 哪 谁 如何 怎么 怎样 怎么样 为什么 为何 多少 几 是否 何时 何 啥 请问 吗"
    " 哪几个 哪几 哪一个 哪一 几个 多久 什么样 为啥".split()
)
STOP_WORDS = (
    frozenset("的 了 和 与 及 或 是 在 也 都 就 把 被 这 那 之 等 着 吗 呢 吧 啊 其 而 并".split())
    # What follows a question word (哪一种, 什么时候) says nothing about the answer either.
    | frozenset("一种 一个 一门 一部分 一位 一项 一类 一名 时候".split())
    | frozenset("a an the of to in on for and or is are".split())
    | QUESTION_WORDS
)

_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# A letter or digit that is not Han (Latin, Greek, Cyrillic, kana, ...).
_ALNUM = rf"(?:(?![{_HAN}])[^\W_])"
_TOKEN_RE = re.compile(
    rf"(?P<han>[{_HAN}]+)"
    # An optional leading dot only before letters, for names such as .net, and not inside an
    # identifier (v1.net); a Chinese character before it is a boundary (使用.net开发).
    rf"|(?P<ident>(?:(?<![._])(?<!{_ALNUM})\.(?=[a-z]))?{_ALNUM}+(?:[.\-_]{_ALNUM}+)*(?:\+\+|#)?)"
)
_HAN_RUN_RE = re.compile(rf"[{_HAN}]+")
_SEGMENT_RE = re.compile(r"[-_]")
_PIECE_RE = re.compile(r"[^\W\d_]+|\d+")
_VERSION_RE = re.compile(r"v(\d+(?:\.\d+)+)")

_init_lock = threading.Lock()
_lock = threading.Lock()
_initialized = False
USER_DICT_ENV = "ZHSEARCH_USER_DICT"
SEGMENTER_ENV = "ZHSEARCH_SEGMENTER"
SEGMENTERS = ("rjieba", "jieba")

Span3 = tuple[str, int, int]


class Segmenter:
    """jieba's precise-mode segmentation behind one small interface.

    Two implementations give identical words: ``jieba`` (the pure-Python
    reference) and ``rjieba`` (jieba-rs, a Rust port with the same dictionary
    and HMM). On 300 of the benchmark articles they agreed on all 61,305 runs
    of Chinese text and on every sub-word lookup, and rjieba was 4× faster,
    so it is the default; ``ZHSEARCH_SEGMENTER=jieba`` selects the reference.
    """

    def __init__(self, name: str) -> None:
        if name not in SEGMENTERS:
            raise IndexerError(f"unknown segmenter {name!r}; choose one of: {', '.join(SEGMENTERS)}")
        self.name = name
        if name == "rjieba":
            import rjieba

            self.tokenize: Callable[[str], list[Span3]] = rjieba.tokenize
            self.has_word: Callable[[str], bool] = rjieba.has_word
            self._add_word: Callable[[str, int | None, str | None], object] = rjieba.add_word
        else:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            self.tokenize = lambda text: list(jieba.tokenize(text, HMM=True))
            self.has_word = lambda word: bool(jieba.get_FREQ(word))
            self._add_word = jieba.add_word

    def add_word(self, word: str, freq: int | None, tag: str | None) -> None:
        """Add a user-dictionary word."""
        self._add_word(word, freq, tag)
        # A new word can be a sub-word of words already looked at.
        _subword_spans.cache_clear()


_segmenter: Segmenter | None = None


def _init_jieba_core() -> None:
    global _initialized, _segmenter
    with _init_lock:
        if _initialized:
            return
        _segmenter = Segmenter(os.environ.get(SEGMENTER_ENV, "rjieba"))
        _initialized = True


def segmenter() -> Segmenter:
    """The segmenter this process uses (initialising it on first use)."""
    if _segmenter is None:
        init_jieba()
    assert _segmenter is not None
    return _segmenter


def init_jieba() -> None:
    """Load jieba's dictionary and the user dictionary (``ZHSEARCH_USER_DICT``) once per process.

    The user dictionary must be loaded before any text is segmented, so that
    indexing and querying split words the same way.
    """
    _init_jieba_core()
    if _loaded_user_dict is None and os.environ.get(USER_DICT_ENV):
        load_user_dict()


@dataclass(frozen=True)
class UserDict:
    """A loaded user dictionary: where it came from and a digest of its content."""

    path: str
    sha256: str
    words: int


_loaded_user_dict: UserDict | None = None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def load_user_dict(path: str | Path | None = None) -> UserDict | None:
    """Add the user dictionary's words to jieba in this process (once); None when none is set.

    ``path`` defaults to ``ZHSEARCH_USER_DICT``. Raises ``IndexerError`` if
    the file cannot be read or a line is malformed, naming the line.
    """
    global _loaded_user_dict
    chosen = str(path) if path else os.environ.get(USER_DICT_ENV, "")
    if not chosen:
        return None
    resolved = str(Path(chosen).resolve())
    with _lock:
        if _loaded_user_dict is not None:
            if _loaded_user_dict.path != resolved:
                raise IndexerError(
                    f"this process already uses the user dictionary {_loaded_user_dict.path}; "
                    f"start a new process to use {resolved}"
                )
            return _loaded_user_dict
        _init_jieba_core()
        try:
            with open(resolved, encoding="utf-8-sig") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise IndexerError(f"cannot read the user dictionary {resolved}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise IndexerError(f"the user dictionary {resolved} is not UTF-8 text") from None
        words = 0
        for lineno, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            word = normalize(parts[0])
            freq: int | None = None
            tag: str | None = None
            for extra in parts[1:3]:
                if extra.isdigit():
                    freq = int(extra)
                else:
                    tag = extra
            if len(parts) > 3:
                raise IndexerError(f"{resolved}:{lineno}: expected 'word [frequency] [tag]', got {line!r}")
            segmenter().add_word(word, freq, tag)
            words += 1
        _loaded_user_dict = UserDict(resolved, file_sha256(resolved), words)
        return _loaded_user_dict


def current_user_dict() -> UserDict | None:
    """The user dictionary loaded in this process, if any."""
    return _loaded_user_dict


def _build_fold_table() -> dict[int, str]:
    """One-character foldings: NFKC width/compatibility forms, lowercase, traditional → simplified."""
    converter = opencc.OpenCC("t2s")
    table: dict[int, str] = {}
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        folded = unicodedata.normalize("NFKC", ch)
        if len(folded) != 1:
            folded = ch
        lowered = folded.lower()
        if len(lowered) == 1:
            folded = lowered
        if "\u3400" <= folded <= "\u9fff" or "\uf900" <= folded <= "\ufaff":
            simplified = converter.convert(folded)
            if len(simplified) == 1:
                folded = simplified
        if folded != ch:
            table[cp] = folded
    for cp in range(ord("A"), ord("Z") + 1):
        table[cp] = chr(cp + 32)
    return table


_FOLD_TABLE: dict[int, str] | None = None


def normalize(text: str) -> str:
    """Fold width, case and traditional characters, keeping the length unchanged.

    Every character maps to exactly one character (a folding that would
    change the length, such as the ligature "ﬁ", is not applied), so every
    offset into the result is also an offset into ``text``.
    """
    if text.isascii():
        return text.lower()
    return text.translate(_fold_table())


def _fold_table() -> dict[int, str]:
    global _FOLD_TABLE
    if _FOLD_TABLE is None:
        _FOLD_TABLE = _build_fold_table()
    return _FOLD_TABLE


@functools.lru_cache(maxsize=1024)
def folded_pattern(folded: str) -> re.Pattern[str]:
    """A pattern that finds ``folded`` (folded text) in text as written, whatever its width, case or script.

    Folding a whole document to look for a few words costs far more than
    searching it for every way of writing them: 經濟 and 经济 alike for 经济.
    """
    variants = _unfold_table()
    parts = []
    for ch in folded:
        chars = ch + variants.get(ch, "")
        parts.append(re.escape(ch) if len(chars) == 1 else "[" + "".join(re.escape(c) for c in chars) + "]")
    return re.compile("".join(parts))


def load_fold_tables() -> None:
    """Build the character folding tables now (about 0.6 s), not inside the first query's time limit."""
    _unfold_table()


@functools.cache
def _unfold_table() -> dict[str, str]:
    """Each folded character with the other characters that fold to it (经 → 經)."""
    variants: dict[str, str] = {}
    for cp, target in _fold_table().items():
        variants[target] = variants.get(target, "") + chr(cp)
    return variants


def _identifier_parts(ident: str, start: int) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int, int]]]:
    """Split an identifier into its finest pieces and its intermediate parts.

    Returns ``(pieces, parts)``: pieces are ``(text, start, end)`` in order;
    parts are ``(text, start, end, piece_index)`` for the whole identifier,
    its ``-``/``_`` segments, their ``.`` sub-parts and the numeric core of a
    version string, each anchored at the index of its first piece.
    """
    pieces = [(m.group(), start + m.start(), start + m.end()) for m in _PIECE_RE.finditer(ident)]
    piece_at = {s: i for i, (_, s, _) in enumerate(pieces)}
    starts = [ps for _, ps, _ in pieces]

    def first_piece(s: int) -> int:
        # The first piece that starts at or after s (a part may begin with "."); a bisection, because an
        # identifier of 100,000 dotted pieces (a.a.a…) made a scan per part quadratic.
        return min(bisect.bisect_left(starts, s), len(pieces) - 1)

    parts: list[tuple[str, int, int, int]] = [(ident, start, start + len(ident), 0)]
    offset = 0
    for segment in _SEGMENT_RE.split(ident):
        seg_start = start + offset
        offset += len(segment) + 1
        if not segment:
            continue
        parts.append((segment, seg_start, seg_start + len(segment), first_piece(seg_start)))
        version = _VERSION_RE.fullmatch(segment)
        if version:
            parts.append((version.group(1), seg_start + 1, seg_start + len(segment), piece_at.get(seg_start + 1, 0)))
        sub_offset = 0
        for sub in segment.split("."):
            sub_start = seg_start + sub_offset
            sub_offset += len(sub) + 1
            if sub:
                parts.append((sub, sub_start, sub_start + len(sub), first_piece(sub_start)))
    return pieces, parts


@functools.lru_cache(maxsize=65536)
def _subword_spans(word: str) -> tuple[tuple[str, int, int], ...]:
    """The dictionary words inside ``word`` (2 then 3 characters, left to right) with their offsets in it.

    Cached: a build meets the same long words over and over. The cache is
    emptied when a word is added to the dictionary (``Segmenter.add_word``).
    """
    seg = _segmenter if _segmenter is not None else segmenter()
    return tuple(
        (word[i : i + n], i, i + n)
        for n in (2, 3)
        if len(word) > n
        for i in range(len(word) - n + 1)
        if seg.has_word(word[i : i + n])
    )


@functools.lru_cache(maxsize=65536)
def _identifier_terms(ident: str) -> tuple[tuple[tuple[str, int, int, int], ...], int]:
    """An identifier's index terms as ``(text, position, start, end)`` relative to it, and the positions it takes.

    Cached: identifiers (versions, product names) repeat across a collection.
    """
    pieces, parts = _identifier_parts(ident, 0)
    found = {(text_, s): (i, e) for text_, s, e, i in parts}
    if len(pieces) > 1:
        for i, (text_, s, e) in enumerate(pieces):
            found.setdefault((text_, s), (i, e))
    # Whoosh expects each term's positions in increasing order.
    ordered = sorted(found.items(), key=lambda kv: (kv[1][0], kv[0][1], -kv[1][1]))
    return tuple((text_, p, s, e) for (text_, s), (p, e) in ordered), max(len(pieces), 1)


def iter_terms(text: str, mode: str = "query", *, folded: bool = False) -> Iterator[tuple[str, int, int, int]]:
    """Yield ``(term, position, startchar, endchar)`` for ``text``.

    ``mode="index"`` adds sub-words and identifier parts; any other mode is
    query analysis. Positions are ordinal; tokens that share a position are
    alternatives for the same stretch of text. ``folded``: ``text`` is
    already ``normalize(text)``.
    """
    seg = _segmenter if _segmenter is not None else segmenter()
    norm = text if folded else normalize(text)
    index_mode = mode == "index"
    pos = 0
    for m in _TOKEN_RE.finditer(norm):
        run_start = m.start()
        if m.lastgroup == "han":
            for word, s, e in seg.tokenize(m.group()):
                s += run_start
                e += run_start
                yield word, pos, s, e
                if index_mode and len(word) > 2:
                    # The same sub-words jieba's search mode adds, at the parent's position.
                    for gram, i, j in _subword_spans(word):
                        yield gram, pos, s + i, s + j
                pos += 1
            continue
        ident = m.group()
        if not index_mode:
            yield ident, pos, run_start, m.end()
            pos += 1
            continue
        terms, width = _identifier_terms(ident)
        for text_, p, s, e in terms:
            yield text_, pos + p, run_start + s, run_start + e
        pos += width


def han_bigrams(text: str, *, folded: bool = False) -> list[str]:
    """Overlapping pairs of Han characters in the folded text (a lone character stands alone).

    ``folded``: ``text`` is already ``normalize(text)`` (a build folds each text once for all its fields).
    """
    grams: list[str] = []
    for m in _HAN_RUN_RE.finditer(text if folded else normalize(text)):
        run = m.group()
        if len(run) == 1:
            grams.append(run)
        else:
            grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


# The Whoosh tokenizers live with the Whoosh backend, so that analysing text
# never imports Whoosh. Indexes pickle them under this module's name, so the
# names still resolve here, loaded on first use.
_WHOOSH_ADAPTERS = frozenset({"ChineseTokenizer", "BigramTokenizer"})


def __getattr__(name: str) -> Any:
    if name in _WHOOSH_ADAPTERS:
        from .backends.whoosh import tokenizers

        return getattr(tokenizers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def subwords(word: str) -> list[str]:
    """The dictionary words inside a long word, as the index holds them (学术研究 → 学术, 研究)."""
    if len(word) <= 2 or not _HAN_RUN_RE.fullmatch(word):
        return []
    seg = segmenter()
    found = [word[i : i + n] for n in (2, 3) if len(word) > n for i in range(len(word) - n + 1)]
    return [g for g in dict.fromkeys(found) if seg.has_word(g)]


def identifier_pieces(term: str) -> list[str]:
    """The finest parts of a query identifier (``python3`` → python, 3); [] for a plain word.

    A query for ``Python3`` also runs the phrase of its pieces, which the
    index holds at successive positions for both ``Python3`` and ``Python 3``.
    """
    if not term.isascii() or not _TOKEN_RE.fullmatch(term):
        return []
    pieces = _PIECE_RE.findall(term)
    return pieces if len(pieces) > 1 else []


def query_terms(text: str) -> list[str]:
    """Segment a query string the way the index is queried (precise mode, whole identifiers)."""
    return [term for term, _, _, _ in iter_terms(text, "query")]
