"""A faster Whoosh segment writer for full builds: the same index, less Python per posting.

Whoosh's ``SegmentWriter`` analyses each text field through Token objects,
adds every posting to its pool as a 5-tuple, sorts all of them, and then
writes them one call per posting. For zhsearch's schema that posting writer
took about half of a build. This writer keeps Whoosh's on-disk format and
its codec (the block and term-info code is Whoosh's own), and changes how
the postings get there:

- **One analysis pass per document.** The ``content`` field is the title, a
  blank line and the body, so the title's terms are exactly the content terms
  that start inside the title: one pass of the analyzer gives both fields.
  Each term's positions are encoded as ``formats.Positions`` encodes them;
  the character bigrams are counted with ``collections.Counter``.
- **A pool of posting lists, not of postings.** Postings are appended to
  their term's list as documents arrive, in document order, so only the
  distinct terms are sorted at the end. A full pool is spilled to a run file
  a term at a time, and runs are merged by term.
- **Posting lists written a block at a time.** The block buffers of Whoosh's
  ``W3PostingsWriter`` are filled from slices of a term's list and written
  by its own ``_write_block``; field lengths come from this writer's own
  record, not from reading the length column back for every posting.

``tests/test_fast_writer.py`` checks that an index written this way holds
exactly what Whoosh's own writer writes: every term, posting, weight,
position list, block statistic, length and stored field.
"""

from __future__ import annotations

import hashlib
import heapq
import pickle
import struct
import zlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from whoosh import formats
from whoosh.codec.whoosh3 import COMPRESSION_MIN_SIZE, WHOOSH3_HEADER_MAGIC, W3Codec, W3FieldWriter, W3TermInfo
from whoosh.filedb.filetables import _lengths as _ROW_LENGTHS
from whoosh.filedb.filetables import md5_hash
from whoosh.filedb.structfile import StructFile
from whoosh.system import pack_int as _pack_int
from whoosh.system import pack_long as _pack_long
from whoosh.system import pack_uint as _pack_uint
from whoosh.system import pack_ushort as _pack_ushort
from whoosh.util import random_name
from whoosh.util.numeric import length_to_byte
from whoosh.writing import SegmentWriter

from ...analysis import han_bigrams, iter_terms, normalize
from ...schema import CONTENT, CONTENT_BI, TITLE

# Whoosh's struct packers, typed.
pack_int: Callable[[int], bytes] = _pack_int
pack_long: Callable[[int], bytes] = _pack_long
pack_uint: Callable[[int], bytes] = _pack_uint
pack_ushort: Callable[[int], bytes] = _pack_ushort
# A posting's weight as the block's float array holds it.
_F32 = struct.Struct("f")
# The fixed part of a term's record in the term index (``W3TermInfo._struct``).
_TERMINFO: struct.Struct = W3TermInfo._struct
# A posting list is one flat list: docnum, weight, value bytes, docnum, ...
_STRIDE = 3
# Rough bytes of memory per posting and per term, to decide when to spill the pool.
_POSTING_BYTES = 80
_TERM_BYTES = 200
# Terms pickled together in a run file: fewer, larger pickle calls.
_RUN_CHUNK = 512
# Weights and frequency values repeat: share one object for each small count.
_SMALL = 1024
_WEIGHTS = [float(n) for n in range(_SMALL)]
_FREQ_BYTES = [pack_uint(n) for n in range(_SMALL)]
# The pickled list of one position, the commonest case, by position.
_ONE_POSITION: dict[int, bytes] = {}
_ONE = pack_uint(1)


def _weight(n: int) -> float:
    return _WEIGHTS[n] if n < _SMALL else float(n)


def _freq_bytes(n: int) -> bytes:
    return _FREQ_BYTES[n] if n < _SMALL else pack_uint(n)


def encode_positions(poslist: list[int]) -> bytes:
    """What ``whoosh.formats.Positions.encode`` returns for ``poslist``, a new bytes object each time.

    A new object, not a shared one: the codec pickles a block's values as a
    tuple, and pickle writes an object it has seen as a back-reference, which
    would make the posting file differ from what Whoosh writes.
    """
    if len(poslist) == 1:
        pos = poslist[0]
        tail = _ONE_POSITION.get(pos)
        if tail is None:
            tail = _ONE_POSITION[pos] = pickle.dumps([pos], 2)
        return _ONE + tail
    deltas = [poslist[0]]
    deltas += [b - a for a, b in zip(poslist, poslist[1:], strict=False)]
    return pack_uint(len(deltas)) + pickle.dumps(deltas, 2)


# (term bytes, frequency, weight, value bytes), as Whoosh's ``field.index()`` yields them.
Posting = tuple[bytes, int, float, bytes]


def content_postings(folded: str, title_len: int) -> tuple[list[Posting], list[Posting]]:
    """The ``content`` field's postings and the title's, from one analyzer pass over the folded content.

    The title is the start of ``content`` and a blank line ends it, which no
    term crosses: the title's terms (and positions) are the first terms of
    the content, those that start before ``title_len``.
    """
    terms = list(iter_terms(folded, "index", folded=True))
    in_title = 0
    for found in terms:
        if found[2] >= title_len:
            break
        in_title += 1
    content_pos: defaultdict[str, list[int]] = defaultdict(list)
    for term, pos, _start, _end in terms:
        content_pos[term].append(pos)
    title_pos: defaultdict[str, list[int]] = defaultdict(list)
    for term, pos, _start, _end in terms[:in_title]:
        title_pos[term].append(pos)
    return _positions_postings(content_pos), _positions_postings(title_pos)


def text_postings(text: str) -> list[Posting]:
    """One word field's postings: positions encoded as ``formats.Positions`` does."""
    positions: dict[str, list[int]] = {}
    for term, pos, _start, _end in iter_terms(text, "index"):
        positions.setdefault(term, []).append(pos)
    return _positions_postings(positions)


def _positions_postings(positions: dict[str, list[int]]) -> list[Posting]:
    return [
        (term.encode("utf-8"), len(poslist), _weight(len(poslist)), encode_positions(poslist))
        for term, poslist in positions.items()
    ]


def bigram_postings(text: str, folded: bool = False) -> list[Posting]:
    """The ``content_bi`` field's postings: each bigram's count, encoded as ``formats.Frequency`` does."""
    counts = Counter(han_bigrams(text, folded=folded))
    return [(gram.encode("utf-8"), n, _weight(n), _freq_bytes(n)) for gram, n in counts.items()]


class TermPool:
    """Postings grouped by field and term, in document order, spilled to sorted run files when full."""

    def __init__(self, tempstore: Any, limitmb: int) -> None:
        self.tempstore = tempstore
        self.limit = limitmb * 1024 * 1024
        self.size = 0
        self.fields: dict[str, dict[bytes, list[Any]]] = {}
        self.runs: list[str] = []
        self.fieldnames: set[str] = set()

    def add_postings(self, fieldname: str, docnum: int, postings: Iterable[Posting]) -> None:
        """Add one document's postings for one field."""
        terms = self.fields.get(fieldname)
        if terms is None:
            terms = self.fields[fieldname] = {}
            self.fieldnames.add(fieldname)
        added = 0
        for tbytes, _freq, weight, vbytes in postings:
            found = terms.get(tbytes)
            if found is None:
                terms[tbytes] = [docnum, weight, vbytes]
                added += _TERM_BYTES
            else:
                found += (docnum, weight, vbytes)
            added += _POSTING_BYTES
        self.size += added

    def full(self) -> bool:
        """True when the pool holds more than its memory limit."""
        return self.size > self.limit

    def _sorted(self) -> Iterator[tuple[str, bytes, list[Any]]]:
        for fieldname in sorted(self.fields):
            terms = self.fields[fieldname]
            for tbytes in sorted(terms):
                yield fieldname, tbytes, terms[tbytes]

    def spill(self) -> None:
        """Write the pool to a run file, sorted by field and term, and empty it."""
        if not self.fields:
            return
        name = f"{random_name()}.run"
        with self.tempstore.create_file(name).raw_file() as f:
            chunk: list[tuple[str, bytes, list[Any]]] = []
            for entry in self._sorted():
                chunk.append(entry)
                if len(chunk) >= _RUN_CHUNK:
                    pickle.dump(chunk, f, pickle.HIGHEST_PROTOCOL)
                    chunk = []
            if chunk:
                pickle.dump(chunk, f, pickle.HIGHEST_PROTOCOL)
        self.runs.append(name)
        self.fields = {}
        self.size = 0

    def _read_run(self, name: str) -> Iterator[tuple[str, bytes, list[Any]]]:
        with self.tempstore.open_file(name).raw_file() as f:
            while True:
                try:
                    chunk = pickle.load(f)
                except EOFError:
                    break
                yield from chunk
        self.tempstore.delete_file(name)

    def posting_lists(self) -> Iterator[tuple[str, bytes, list[Any]]]:
        """Every (field, term, flat posting list), sorted by field and term, each list in document order."""
        if not self.runs:
            yield from self._sorted()
            return
        # Runs hold successive documents, and heapq.merge keeps equal keys in
        # the order of its inputs: concatenating keeps each list in document order.
        sources = [self._read_run(name) for name in self.runs] + [self._sorted()]
        merged = heapq.merge(*sources, key=itemgetter(0, 1))
        last: tuple[str, bytes, list[Any]] | None = None
        for entry in merged:
            if last is not None and entry[0] == last[0] and entry[1] == last[1]:
                last[2].extend(entry[2])
                continue
            if last is not None:
                yield last
            last = entry
        if last is not None:
            yield last

    def cleanup(self) -> None:
        """Remove run files left behind (a cancelled or failed write)."""
        for name in self.runs:
            try:
                self.tempstore.delete_file(name)
            except OSError:
                pass
        self.runs = []


# Analyses a field value into postings; None: Whoosh's own ``field.index``.
Analyse = Callable[[Any], list[Posting]]


def _special_fields(schema: Any) -> dict[str, Analyse]:
    """The fields this module analyses itself: those whose analyzer and format it reproduces exactly."""
    from .tokenizers import BigramTokenizer, ChineseTokenizer

    wanted: dict[str, tuple[type, type[formats.Format], Analyse]] = {
        TITLE: (ChineseTokenizer, formats.Positions, text_postings),
        CONTENT: (ChineseTokenizer, formats.Positions, text_postings),
        CONTENT_BI: (BigramTokenizer, formats.Frequency, bigram_postings),
    }
    found: dict[str, Analyse] = {}
    for name, (tokenizer, fmt, analyse) in wanted.items():
        field = schema[name] if name in schema else None
        if (
            field is not None
            and type(field.analyzer) is tokenizer
            and type(field.format) is fmt
            and field.format.field_boost == 1.0
            and not field.vector
            and not field.separate_spelling()
        ):
            found[name] = analyse
    return found


class FastSegmentWriter(SegmentWriter):  # type: ignore[misc]
    """Whoosh's ``SegmentWriter`` for a fresh build, with its posting path replaced (see the module docstring)."""

    def __init__(self, ix: Any, **kwargs: Any) -> None:
        super().__init__(ix, **kwargs)
        self.pool = TermPool(self._tempstorage, kwargs.get("limitmb", 128))
        # Each scorable field's length per document, as the length column will give it back.
        self._lengths: dict[str, array[int]] = {}
        self._special = _special_fields(self.schema)

    def analyse(self, fields: dict[str, Any]) -> dict[str, list[Posting]]:
        """Every indexed field's postings for one document, weighted by any ``_boost`` it gives."""
        schema = self.schema
        out: dict[str, list[Posting]] = {}
        title, content = fields.get(TITLE), fields.get(CONTENT)
        if (
            TITLE in self._special
            and CONTENT in self._special
            and isinstance(title, str)
            and isinstance(content, str)
            and content.startswith(title + "\n\n")
        ):
            out[CONTENT], out[TITLE], folded = self.analyse_content(content, len(title))
            if CONTENT_BI in self._special and fields.get(CONTENT_BI) == content:
                # The bigrams are of the same text: fold it once.
                out[CONTENT_BI] = self.analyse_bigrams(folded)
        docboost = self._doc_boost(fields)
        for name, value in fields.items():
            if value is None or name.startswith("_"):
                continue
            field = schema[name]
            if not field.indexed:
                continue
            items = out.get(name)
            if items is None:
                items = self.analyse_field(name, field, value)
            boost = self._field_boost(fields, name, docboost)
            # Whoosh multiplies every weight by the boost, which also makes an int weight a float.
            if boost != 1.0 or name not in self._special:
                items = [(t, f, w * boost, v) for t, f, w, v in items]
            out[name] = items
        return out

    def analyse_content(self, content: str, title_len: int) -> tuple[list[Posting], list[Posting], str]:
        """The content field's postings, the title's (``content_postings``), and the folded content."""
        folded = normalize(content)
        return (*content_postings(folded, title_len), folded)

    def analyse_bigrams(self, folded: str) -> list[Posting]:
        """The bigram field's postings, from the folded text."""
        return bigram_postings(folded, folded=True)

    def analyse_field(self, name: str, field: Any, value: Any) -> list[Posting]:
        """One field's postings: this module's analysis for the text fields, else Whoosh's ``field.index``."""
        special = self._special.get(name)
        return special(value) if special is not None else list(field.index(value))

    def add_document(self, **fields: Any) -> None:
        """Add one document: its postings to the pool, its stored values and lengths to the segment."""
        self._check_state()
        self._check_fields(self.schema, [n for n in fields if not n.startswith("_")])
        self.add_analysed(fields, self.analyse(fields))

    def add_analysed(self, fields: dict[str, Any], postings: dict[str, list[Posting]]) -> None:
        """Add a document whose postings ``analyse`` gave."""
        schema = self.schema
        docnum = self.docnum
        pool = self.pool
        perdoc = self.perdocwriter
        perdoc.start_doc(docnum)
        try:
            for name in sorted(n for n in fields if not n.startswith("_")):
                value = fields[name]
                if value is None:
                    continue
                field = schema[name]
                length = 0
                items = postings.get(name)
                if items is not None:
                    pool.add_postings(name, docnum, items)
                    if field.scorable:
                        length = sum(item[1] for item in items)
                        self._record_length(name, docnum, length)
                custom = fields.get(f"_stored_{name}", value)
                perdoc.add_field(name, field, custom if field.stored else None, length)
                column = field.column_type
                if column and custom is not None:
                    perdoc.add_column_value(name, column, field.to_column_value(custom))
        except ValueError:
            perdoc.cancel_doc()
            raise
        perdoc.finish_doc()
        self._added = True
        self.docnum += 1
        if pool.full():
            pool.spill()

    def _record_length(self, name: str, docnum: int, length: int) -> None:
        # The length column keeps a byte per document (length_to_byte), and the
        # block and term statistics are that byte again, of the shortest and
        # longest: the bytes are all the posting writer needs.
        lengths = self._lengths.get(name)
        if lengths is None:
            lengths = self._lengths[name] = array("B")
        if len(lengths) <= docnum:
            lengths.extend(bytes(docnum + 1 - len(lengths)))
        lengths[docnum] = length_to_byte(length)

    def add_reader(self, reader: Any) -> None:
        """Not for merging: this writer only builds fresh indexes."""
        raise NotImplementedError("FastSegmentWriter writes fresh builds only; merge with Whoosh's own writer")

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        self._write_postings()
        self.fieldwriter.close()

    def _write_postings(self) -> None:
        """Write every posting list: straight into the W3 codec's files, or else through Whoosh's own loop."""
        fieldwriter = self.fieldwriter
        if not isinstance(fieldwriter, W3FieldWriter) or not _plain_w3(self.codec):
            # Another codec: hand Whoosh its postings one by one.
            lengths = self.per_document_reader()
            try:
                fieldwriter.add_postings(self.schema, lengths, _each_posting(self.pool.posting_lists()))
            finally:
                lengths.close()
            return
        terms = _TermWriter(fieldwriter, self.codec)
        schema = self.schema
        current: str | None = None
        for fieldname, tbytes, flat in self.pool.posting_lists():
            if fieldname != current:
                if current is not None:
                    fieldwriter.finish_field()
                fieldobj = schema[fieldname]
                fieldwriter.start_field(fieldname, fieldobj)
                terms.start_field(fieldwriter._fieldid, fieldobj.format, self._lengths.get(fieldname))
                current = fieldname
            terms.write(tbytes, flat)
        if current is not None:
            fieldwriter.finish_field()


def _each_posting(lists: Iterable[tuple[str, bytes, list[Any]]]) -> Iterator[tuple[str, bytes, int, float, bytes]]:
    for fieldname, tbytes, flat in lists:
        for i in range(0, len(flat), _STRIDE):
            yield fieldname, tbytes, flat[i], flat[i + 1], flat[i + 2]


def _plain_w3(codec: Any) -> bool:
    """True for the W3 codec with the settings ``_TermWriter`` reproduces (never inlined postings)."""
    return type(codec) is W3Codec and codec._inlinelimit <= 1 and codec._blocklimit > 0


class _TermWriter:
    """Writes one term's posting list into a ``W3FieldWriter``'s files, byte for byte as Whoosh would.

    Whoosh's ``W3PostingsWriter`` takes one posting per call, and for each
    term makes a ``W3TermInfo`` and fresh block buffers; here a term's whole
    list is sliced into blocks, and each block's statistics are computed with
    built-ins over the slice. The bytes written (block headers, pickled and
    compressed block data, the term's row in the term index) follow
    ``W3PostingsWriter._write_block``, ``W3TermInfo.add_block``,
    ``W3TermInfo.to_bytes`` and ``OrderedHashWriter.add`` in whoosh3 3.54.0
    (the exact version zhsearch depends on), and ``tests/test_fast_writer.py``
    compares the files with Whoosh's own.

    Lengths are handled as the length column's bytes: ``length_to_byte`` is
    monotonic and ``length_to_byte(byte_to_length(b)) == b``, so the byte of
    the shortest length is the smallest byte.
    """

    def __init__(self, fieldwriter: W3FieldWriter, codec: W3Codec) -> None:
        postfile = fieldwriter._postfile
        self.post_write = postfile.file.write if type(postfile) is StructFile else postfile.write
        self.post_offset = postfile.tell()
        tindex = fieldwriter._tindex
        self.tindex = tindex
        dbfile = tindex.dbfile
        self.term_write = dbfile.file.write if type(dbfile) is StructFile else dbfile.write
        self.term_offset = dbfile.tell()
        self.hashfn = _md5_hash if tindex.hashfn is md5_hash else tindex.hashfn
        self.blocklimit = codec._blocklimit
        self.compression = codec._compression
        self.fieldkey = b""
        self.fixed: int | None = None
        self.lengths: array[int] | None = None

    def start_field(self, fieldid: int, format_: Any, lengths: array[int] | None) -> None:
        """Set the field the next terms belong to."""
        self.fieldkey = pack_ushort(fieldid)
        self.fixed = format_.fixed_value_size()
        self.lengths = lengths

    def write(self, tbytes: bytes, flat: list[Any]) -> None:
        """Write one term: its posting list's blocks, then its row in the term index."""
        if len(flat) == _STRIDE:
            info = self._write_one(flat[0], flat[1], flat[2])
        else:
            info = self._write_blocks(flat)
        self._add_row(self.fieldkey + tbytes, info)

    def _values(self, values: list[bytes]) -> Any:
        """A block's values as ``W3PostingsWriter._mini_values`` makes them (it keeps only non-empty ones)."""
        fixed = self.fixed
        if fixed == 0:
            return None
        if not all(values):
            values = [v for v in values if v]
        if fixed is None or fixed < 0:
            return tuple(values)
        return b"".join(values)

    def _block(self, data: tuple[Any, ...], info: tuple[Any, ...], last: bool) -> int:
        """Write one block (pickled, compressed when large enough); return the bytes written."""
        databytes = pickle.dumps(data, 2)
        comp = self.compression if len(databytes) >= COMPRESSION_MIN_SIZE else 0
        if comp:
            databytes = zlib.compress(databytes, comp)
        infobytes = pickle.dumps((*info[:3], comp, *info[3:]), 2)
        size = len(infobytes) + len(databytes)
        self.post_write(pack_int(-size if last else size) + infobytes + databytes)
        return 4 + size

    def _write_one(self, doc: int, weight: float, value: bytes) -> bytes:
        """A posting list of one posting (about half of all terms): one block, no slicing."""
        lengths = self.lengths
        lbyte = lengths[doc] if lengths is not None and doc < len(lengths) else 0
        f32 = _F32.unpack(_F32.pack(weight))[0]
        maxweight: float = weight if weight > 0 else 0
        offset = self.post_offset
        self.post_write(WHOOSH3_HEADER_MAGIC)
        written = len(WHOOSH3_HEADER_MAGIC) + self._block(
            ((doc,), None if f32 == 1.0 else f32, self._values([value])), (1, doc, maxweight, lbyte, lbyte), True
        )
        return self._finish(offset, written, f32, 1, lbyte, lbyte, maxweight, doc, doc)

    def _finish(
        self,
        offset: int,
        written: int,
        weight: float,
        df: int,
        minbyte: int,
        maxbyte: int,
        maxweight: float,
        minid: int,
        maxid: int,
    ) -> bytes:
        self.post_offset = offset + written
        info = _TERMINFO.pack(False, weight, df, minbyte, maxbyte, maxweight, minid, maxid)
        return info + pack_long(offset) + pack_int(written)

    def _write_blocks(self, flat: list[Any]) -> bytes:
        """A longer posting list, in blocks of the codec's size."""
        limit = self.blocklimit
        lengths = self.lengths
        nlengths = len(lengths) if lengths is not None else 0
        docs = flat[0::_STRIDE]
        weights = flat[1::_STRIDE]
        values = flat[2::_STRIDE]
        n = len(docs)
        offset = self.post_offset
        self.post_write(WHOOSH3_HEADER_MAGIC)
        written = len(WHOOSH3_HEADER_MAGIC)
        # W3TermInfo's running statistics, in its order of operations.
        total_weight: float = 0
        minbyte: int | None = None
        maxbyte = 0
        maxweight: float = 0
        for start in range(0, n, limit):
            end = start + limit
            ids = docs[start:end]
            block_weights = weights[start:end]
            count = len(ids)
            farray = array("f", block_weights)
            block_max = max(block_weights)
            if block_max <= 0:
                block_max = 0
            if lengths is not None:
                block_bytes = [lengths[d] for d in ids if d < nlengths and lengths[d]]
            else:
                block_bytes = []
            block_min_byte = min(block_bytes) if block_bytes else 0
            block_max_byte = max(block_bytes) if block_bytes else 0
            # W3TermInfo.add_block (a block without lengths has a minimum of None, byte 0).
            total_weight += sum(farray)
            if block_bytes:
                minbyte = block_min_byte if minbyte is None else min(minbyte, block_min_byte)
            maxbyte = max(maxbyte, block_max_byte)
            maxweight = max(maxweight, block_max)
            # W3PostingsWriter._mini_ids, _mini_weights
            mini_ids = (ids[0], *[b - a for a, b in zip(ids, ids[1:], strict=False)])
            first = farray[0]
            if farray.count(1.0) == count:
                mini_weights: Any = None
            elif farray.count(first) == count:
                mini_weights = first
            else:
                mini_weights = tuple(farray)
            written += self._block(
                (mini_ids, mini_weights, self._values(values[start:end])),
                (count, ids[-1], block_max, block_min_byte, block_max_byte),
                end >= n,
            )
        return self._finish(offset, written, total_weight, n, minbyte or 0, maxbyte, maxweight, docs[0], docs[-1])

    def _add_row(self, key: bytes, value: bytes) -> None:
        """``OrderedHashWriter.add`` with the file position kept here instead of asked for."""
        tindex = self.tindex
        if key <= tindex.lastkey:
            raise ValueError(f"Keys must increase: {tindex.lastkey!r}..{key!r}")
        pos = self.term_offset
        tindex.index.append(pos)
        self.term_write(_ROW_LENGTHS.pack(len(key), len(value)) + key + value)
        h = self.hashfn(key)
        tindex.buckets[h & 255].append((h, pos))
        tindex.lastkey = key
        self.term_offset = pos + 8 + len(key) + len(value)


def _md5_hash(key: bytes) -> int:
    """``filetables.md5_hash``: the low 32 bits of the key's MD5, without a detour through hex."""
    return int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest()[-4:], "big")
