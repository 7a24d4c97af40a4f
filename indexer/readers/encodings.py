"""Finding the text encoding of a corpus file, or saying why it is not text.

Order of evidence, most reliable first: a byte-order mark; a known binary
signature or NUL bytes; strict UTF-8; UTF-16 without a BOM (judged by how
plausible the decoded characters are); then chardet, restricted to the legacy
Chinese encodings GB18030 (a superset of GBK and GB2312) and Big5. When
chardet's verdict is too weak to trust, the file is reported rather than
guessed: a wrong guess would put mojibake into the index.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import re
import unicodedata
from dataclasses import dataclass

import chardet

# chardet looks at this much; a larger sample changes nothing but the time.
SAMPLE_BYTES = 256 * 1024
# A legacy file is read as Chinese only if chardet rates a Chinese encoding at
# least this share of its best guess (EUC-KR, cp1252 and the like fall below).
MIN_CHINESE_SHARE_OF_TOP = 0.5
# The chosen decoding must be this share common characters, and beat the other
# by this margin; otherwise the file is reported, not guessed. Measured on GBK,
# GB18030 and Big5 encodings of 1,200 snippets of ../shared/data: no wrong
# pick; reported were 3-15% of 10-character snippets, at most 3.3% of
# 30-character ones and at most 0.3% of those of 100 characters or more.
MIN_COMMON_SHARE = 0.8
MIN_MARGIN = 0.1
# Valid non-ASCII characters per damaged byte for a file to still count as UTF-8;
# GBK or Big5 bytes read as UTF-8 give far fewer.
MIN_UTF8_GOOD_PER_BAD = 5
# Share of characters that must look like real text for a BOM-less UTF-16 guess.
MIN_UTF16_PLAUSIBLE = 0.95
# Valid UTF-8 without NUL bytes is text even with stray control characters:
# real articles in ../shared/data hold backspaces (0.8% of one article's
# characters). Only a text that is mostly control characters is not.
MAX_CONTROL_SHARE = 0.1

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "ZIP archive (or .docx/.xlsx)"),
    (b"\x1f\x8b", "gzip archive"),
    (b"\x7fELF", "executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Microsoft Office document"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"RIFF", "RIFF media file"),
)
# Python codec names to try, in order, for what chardet calls each family.
_LEGACY_CODECS = {"gb18030": ("gb18030",), "big5": ("big5", "cp950", "big5hkscs")}
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "big5": "big5", "big5-hkscs": "big5hkscs"}


class DecodeError(ValueError):
    """The bytes are binary, or text in an encoding zhsearch cannot identify with confidence."""


@dataclass(frozen=True)
class Decoded:
    """A file's text and the encoding it was read with."""

    text: str
    encoding: str


def binary_kind(head: bytes, complete: bool = False) -> str | None:
    """Name the kind of binary file these leading bytes start (``complete``: the whole file), or None if text."""
    for bom, _ in _BOMS:
        if head.startswith(bom):
            return None
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if b"\x00" in head[:SAMPLE_BYTES] and _utf16_guess(head[:SAMPLE_BYTES], complete) is None:
        return "binary data"
    return None


def _plausible_share(text: str) -> float:
    # Real text is mostly CJK ideographs, CJK punctuation, ASCII and whitespace;
    # bytes decoded with the wrong UTF-16 byte order land all over the code space.
    if not text:
        return 0.0
    good = 0
    for ch in text:
        o = ord(ch)
        if (
            0x20 <= o < 0x7F
            or ch in "\t\n\r"
            or 0x4E00 <= o <= 0x9FFF
            or 0x3400 <= o <= 0x4DBF
            or 0x3000 <= o <= 0x303F
            or 0xFF00 <= o <= 0xFFEF
            or 0x2000 <= o <= 0x206F
            or (0xA0 <= o <= 0xFF and unicodedata.category(ch)[0] in "LPZS")
        ):
            good += 1
    return good / len(text)


def _utf16_guess(sample: bytes, complete: bool) -> str | None:
    if complete and len(sample) % 2:
        return None
    usable = sample[: len(sample) - len(sample) % 2]
    if len(usable) < 4:
        return None
    best: tuple[float, str] | None = None
    for codec in ("utf-16-le", "utf-16-be"):
        try:
            text = usable.decode(codec)
        except UnicodeDecodeError:
            continue
        if not any(ch < "\x80" for ch in text):
            # Without a single ASCII character (a newline, a space) there are no
            # NUL bytes, and any even-length Big5 or Shift_JIS text "decodes".
            continue
        share = _plausible_share(text)
        if share >= MIN_UTF16_PLAUSIBLE and (best is None or share > best[0]):
            best = (share, codec)
    return best[1] if best else None


def _utf8_prefix_ok(sample: bytes, complete: bool) -> str | None:
    # A sample cut in the middle of a character is still UTF-8.
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        return decoder.decode(sample, final=complete)
    except UnicodeDecodeError:
        return None


def declared_html_charset(head: bytes) -> str | None:
    """The charset an HTML page declares in a ``<meta>`` tag, as a Python codec name, if known."""
    match = _META_CHARSET_RE.search(head[:4096])
    if not match:
        return None
    name = match.group(1).decode("ascii", "replace").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def detect_encoding(sample: bytes, complete: bool = True) -> str:
    """Return the Python codec name for ``sample`` (the whole file if ``complete``), or raise ``DecodeError``."""
    for bom, codec in _BOMS:
        if sample.startswith(bom):
            return codec
    kind = binary_kind(sample, complete)
    if kind is not None:
        raise DecodeError(f"binary file ({kind})")
    if b"\x00" in sample:
        # binary_kind() let it through, so it reads as UTF-16.
        return _utf16_guess(sample, complete) or "utf-16"
    text = _utf8_prefix_ok(sample, complete)
    if text is not None:
        if len(_CONTROL_RE.findall(text)) <= MAX_CONTROL_SHARE * len(text) + 1:
            return "utf-8"
        raise DecodeError("binary file (control characters)")
    lenient = sample.decode("utf-8", errors="replace")
    damaged = lenient.count("\ufffd")
    if sum(1 for ch in lenient if ch >= "\x80") >= (MIN_UTF8_GOOD_PER_BAD + 1) * damaged:
        # UTF-8 with a few damaged bytes: the reader reports where they are
        # instead of trying another encoding on the whole file.
        return "utf-8"
    return _legacy_chinese(sample)


def _family(name: object) -> str:
    family = str(name).lower().replace("-", "").replace("_", "")
    if family.startswith(("big5", "cp950")):
        return "big5"
    return "gb18030" if family.startswith(("gb", "hz")) else family


@functools.cache
def _common_hanzi() -> frozenset[str]:
    # The first level of GB2312 (3,755 most used simplified characters) and of
    # Big5 (5,401 most used traditional ones), taken from Python's own codecs.
    chars: set[str] = set()
    for lead in range(0xB0, 0xD8):
        for trail in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):
                chars.add(bytes((lead, trail)).decode("gb2312"))
    for lead in range(0xA4, 0xC7):
        for trail in (*range(0x40, 0x7F), *range(0xA1, 0xFF)):
            with contextlib.suppress(UnicodeDecodeError):
                chars.add(bytes((lead, trail)).decode("big5"))
    return frozenset(chars)


def _common_share(text: str) -> float:
    """Share of the letters outside ASCII that are common Chinese characters (punctuation is not counted)."""
    common = _common_hanzi()
    letters = good = 0
    for ch in text:
        if ch < "\x80" or unicodedata.category(ch)[0] in "PSZC":
            continue
        letters += 1
        good += ch in common
    return good / letters if letters else 0.0


def _decode_sample(sample: bytes, codec: str) -> str | None:
    try:
        return sample.decode(codec)
    except UnicodeDecodeError as exc:
        # A sample may end inside a two-byte character; only that is forgiven.
        if exc.start >= len(sample) - 3:
            return sample[: exc.start].decode(codec)
        return None


def _legacy_chinese(sample: bytes) -> str:
    sample = sample[:SAMPLE_BYTES]
    # Is it Chinese at all, rather than EUC-KR, Shift_JIS or cp1252? Those
    # bytes often decode as GB18030 too, into common-looking characters.
    ranked = [r for r in chardet.detect_all(sample) if r["encoding"]]
    top = ranked[0]["confidence"] if ranked else 0.0
    chinese = max((r["confidence"] for r in ranked if _family(r["encoding"]) in _LEGACY_CODECS), default=0.0)
    if not ranked or chinese < MIN_CHINESE_SHARE_OF_TOP * top:
        seen = f" (it looks like {ranked[0]['encoding']})" if ranked else ""
        raise DecodeError(f"unknown text encoding{seen}; zhsearch reads UTF-8, UTF-16, GB18030/GBK and Big5")
    # GB18030 or Big5: most text in either decodes in the other too, but into
    # rare characters; the right decoding is the one made of common ones.
    scored: list[tuple[float, str]] = []
    for codecs_ in _LEGACY_CODECS.values():
        for codec in codecs_:
            text = _decode_sample(sample, codec)
            if text is not None:
                scored.append((_common_share(text), codec))
                break
    scored.sort(reverse=True)
    if scored and scored[0][0] >= MIN_COMMON_SHARE and (len(scored) == 1 or scored[0][0] - scored[1][0] >= MIN_MARGIN):
        return scored[0][1]
    raise DecodeError("the text could be GB18030/GBK or Big5 and is too short to tell; save it as UTF-8")


def _codec_label(codec: str) -> str:
    return {"utf-8-sig": "UTF-8", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16"}.get(codec, codec.upper())


def detect_line_encoding(sample: bytes, complete: bool = True) -> str:
    """``detect_encoding`` for formats of one record per line (JSON Lines, CSV), where a bad line costs only itself.

    When at least half its lines are UTF-8, the file is UTF-8 even if some lines are not
    (a stray byte, a NUL, one line pasted from a GBK file): those lines are
    then reported one by one, instead of the whole file being refused as
    binary or decoded as GB18030, which garbles every good line.
    """
    if any(sample.startswith(bom) for bom, _ in _BOMS):
        return detect_encoding(sample, complete)
    # Few NULs (at most one byte in ten): not UTF-16 or UTF-32 without a BOM, whose ASCII characters each
    # come with NUL bytes.
    few_nuls = sample.count(b"\x00") * 10 <= len(sample)
    lines = sample.split(b"\n")
    if not complete and len(lines) > 1:
        lines.pop()  # cut off by the end of the sample
    lines = [line for line in lines if line.strip()]
    valid = [_is_utf8(line) for line in lines]
    non_ascii = [ok for line, ok in zip(lines, valid, strict=True) if not line.isascii()]
    if few_nuls and b"\x00" in sample and (not non_ascii or 2 * sum(non_ascii) >= len(non_ascii)):
        return "utf-8"  # UTF-8 (or ASCII) with a NUL here and there
    try:
        codec = detect_encoding(sample, complete)
    except DecodeError:
        if few_nuls and lines and 2 * sum(valid) >= len(lines):
            return "utf-8"  # mostly UTF-8 lines; the others are reported as they come
        raise
    if codec != "utf-8" and few_nuls and non_ascii and 2 * sum(non_ascii) >= len(non_ascii):
        return "utf-8"  # at least half the lines with non-ASCII characters are UTF-8: the others are damaged
    return codec


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode(data: bytes, declared: str | None = None) -> Decoded:
    """Decode a whole file: a declared charset (from HTML) is trusted if the bytes agree with it."""
    if declared and not any(data.startswith(bom) for bom, _ in _BOMS):
        try:
            return Decoded(data.decode(declared), declared)
        except (UnicodeDecodeError, LookupError):
            pass  # the declaration is wrong; detect as for any file
    codec = detect_encoding(data[:SAMPLE_BYTES], complete=len(data) <= SAMPLE_BYTES)
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid {_codec_label(codec)} text at byte {exc.start + 1}") from None
    return Decoded(text.removeprefix("\ufeff"), codec)


def decode_line(line: bytes, codec: str) -> str:
    """Decode one line of an ASCII-compatible file, or raise ``DecodeError`` naming the encoding."""
    try:
        return line.decode(codec)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid {_codec_label(codec)} text (byte {exc.start + 1} of the line)") from None


def is_ascii_compatible(codec: str) -> bool:
    """True if newlines are single 0x0A bytes in this encoding, so a file can be split into lines as bytes."""
    return not codec.startswith(("utf-16", "utf-32"))
