"""Whoosh's tokenizer interface over zhsearch's analyzer (``indexer.analysis``).

Part of the on-disk format: Whoosh pickles these classes into every index by
name. Their ``__module__`` is ``indexer.analysis``, the name indexes have
always recorded, and that module re-exports them lazily, so old and new
indexes alike unpickle without this module being imported first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from whoosh.analysis import Token, Tokenizer

from ...analysis import han_bigrams, iter_terms, normalize

# The import path recorded in pickled schemas (see the module docstring).
PICKLED_MODULE = "indexer.analysis"


class _StatelessTokenizer(Tokenizer):  # type: ignore[misc]
    """A tokenizer without settings: any two of the same class are equal (Whoosh compares schemas)."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


class ChineseTokenizer(_StatelessTokenizer):
    """Whoosh tokenizer for Chinese, English and technical identifiers.

    It honours Whoosh's tokenizer contract (``positions``, ``chars``,
    ``start_pos``, ``start_char``, ``mode``, ``tokenize``), which jieba's own
    ``ChineseAnalyzer`` ignores; that is why phrase queries work here.
    """

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            # Whoosh asks for the whole value as one token (e.g. for ranges).
            token.original = token.text = normalize(value)
            token.boost = 1.0
            if positions:
                token.pos = start_pos
            if chars:
                token.startchar, token.endchar = start_char, start_char + len(value)
            yield token
            return
        for text, pos, start, end in iter_terms(value, mode):
            token.text = text
            token.boost = 1.0
            token.stopped = False
            if keeporiginal:
                token.original = value[start:end]
            if positions:
                token.pos = start_pos + pos
            if chars:
                token.startchar, token.endchar = start_char + start, start_char + end
            yield token


class BigramTokenizer(_StatelessTokenizer):
    """Character bigrams of the Han text, for a second, segmentation-free view of it.

    Word matching depends on jieba splitting the query and the text alike;
    bigrams do not, so combining both ranks passages whose wording the
    segmenter cut differently (发球权 / 发球的权力).
    """

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for i, gram in enumerate(han_bigrams(value) if tokenize else [normalize(value)]):
            token.text = token.original = gram
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = start_pos + i
            yield token


def chinese_analyzer() -> ChineseTokenizer:
    """The analyzer every word field uses; changing its output requires a rebuild."""
    return ChineseTokenizer()


ChineseTokenizer.__module__ = PICKLED_MODULE
BigramTokenizer.__module__ = PICKLED_MODULE
