"""How a CSV export is written: its character encoding and its delimiter.

Help desks export CSV in more than one way: Excel and European locales write ``;``
(or tabs, as "Unicode text" in UTF-16), older tools write Windows-1252 or Latin-1 bytes,
and many put a byte-order mark first. Read as UTF-8 with commas, such a file either fails
deep in a parser or, worse, trains on one big column or on replacement characters. The
in-memory reader (pandas) and the streamed one (pyarrow) both ask this module first, so
they read a file the same way.

Two more shapes are read here rather than failing later: Excel's ``sep=;`` first line (a
hint Excel writes and reads, naming the delimiter; read as a header it gave one column
``sep=``), and data rows ending in a delimiter the header lacks (``1,a,b,c,`` under
``id,x,y,z``), which pandas reads by taking the first column as the index and shifting
every name one column right: the mapping's ``team`` then held the body, silently.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# the delimiters tried, by how often exports use them
DELIMITERS = (",", ";", "\t", "|")
SCAN_BLOCK = 1 << 20
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class CsvDialect:
    encoding: str  # a Python codec name; "utf-8-sig" and "utf-16" drop their byte-order mark
    delimiter: str
    skip_lines: int = 0  # 1 when the file starts with Excel's "sep=;" line
    # the data rows carry one more field than the header, empty: a trailing delimiter
    trailing_field: bool = False


_SAID: set[Path] = set()  # exports whose dialect was logged
# the name both readers give the field after a trailing delimiter (checked empty, then dropped)
TRAILING = "(after the last delimiter)"
_SEP_HINT = re.compile(r"^sep=(.)\r?\n?$", re.I)


def csv_dialect(path: str | Path) -> CsvDialect:
    """The encoding (by byte-order mark, else UTF-8 when every byte decodes as UTF-8, else
    Windows-1252, else Latin-1, which decodes anything) and the delimiter of the header."""
    path = Path(path)
    encoding = file_encoding(path)
    with open(path, encoding=encoding, newline="", errors="replace") as f:
        header = _header_line(f)
        hint = _SEP_HINT.match(header)
        if hint:
            header = _header_line(f)
        first_row = _header_line(f)
    if hint:
        delimiter = hint.group(1)
    else:
        delimiter = max(DELIMITERS, key=lambda d: _count_unquoted(header, d))
        if _count_unquoted(header, delimiter) == 0:
            delimiter = ","  # one column, or an empty file: the readers say so themselves
    trailing = _has_trailing_field(header, first_row, delimiter)
    if (encoding not in ("utf-8", "utf-8-sig") or delimiter != "," or hint or trailing) and path not in _SAID:
        _SAID.add(path)  # said once: a training asks up to six times
        log.info("%s read as %s with delimiter %r", path, encoding, delimiter)
    return CsvDialect(encoding, delimiter, 1 if hint else 0, trailing)


def _has_trailing_field(header: str, row: str, delimiter: str) -> bool:
    """Whether the first data row has one field more than the header, and that one empty."""
    try:
        names = next(csv.reader([header], delimiter=delimiter), [])
        fields = next(csv.reader([row], delimiter=delimiter), [])
    except csv.Error:
        return False
    return len(names) > 1 and len(fields) == len(names) + 1 and not fields[-1].strip()


def file_encoding(path: Path) -> str:
    """The text encoding of an export (CSV or JSON): by byte-order mark, else UTF-8, else
    :data:`MIXED` when UTF-8 and other bytes are mixed, else Windows-1252, else Latin-1.

    Each answer reads the whole file, and one training asks up to six times (the dialect,
    the header, each pass of the streamed reader): kept per file, size and mtime (a 63 MB
    Windows-1252 export: 0.78 s of CPU per answer, 4.7 s of a 6.8 s sampled read)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _ENCODINGS:
        if len(_ENCODINGS) > 64:
            _ENCODINGS.clear()
        _ENCODINGS[key] = _file_encoding(Path(path))
    return _ENCODINGS[key]


_ENCODINGS: dict[tuple[str, int, int], str] = {}


def _file_encoding(path: Path) -> str:
    with open(path, "rb") as f:
        start = f.read(4)
    for bom, name in BOMS:
        if start.startswith(bom):
            return name
    if _decodes(path, "utf-8"):
        return "utf-8"
    if mixed_counts(path)[0]:
        return MIXED
    return "cp1252" if _decodes(path, "cp1252") else "latin-1"


# A file appended to by two tools (an old system's Windows-1252 rows, a new one's UTF-8)
# decodes as neither: read as Windows-1252 as a whole, its UTF-8 rows came out as
# mojibake ("cafÃ©") without a word. This codec reads each byte sequence that is valid
# UTF-8 as UTF-8 and each other byte as Windows-1252 (Latin-1 for its 5 unassigned bytes);
# both readers take it by name (pyarrow transcodes through Python's codec of that name).
MIXED = "utf-8-or-cp1252"
_FALLBACK = "triage-cp1252-fallback"


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(
        bytes([b]).decode("cp1252", "strict") if b not in _UNASSIGNED else chr(b) for b in bad
    ), exc.end


_UNASSIGNED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}  # no character in Windows-1252: read as Latin-1


class _MixedDecoder(codecs.BufferedIncrementalDecoder):
    def _buffer_decode(self, data, errors, final):  # type: ignore[no-untyped-def]
        return codecs.utf_8_decode(data, _FALLBACK, final)


def _mixed_codec(name: str) -> codecs.CodecInfo | None:
    if name.replace("-", "_") != MIXED.replace("-", "_"):
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(
        name=MIXED,
        encode=utf8.encode,
        decode=lambda data, errors="strict": codecs.utf_8_decode(data, _FALLBACK, True),
        incrementalencoder=utf8.incrementalencoder,
        incrementaldecoder=_MixedDecoder,
        streamreader=utf8.streamreader,
        streamwriter=utf8.streamwriter,
    )


codecs.register_error(_FALLBACK, _cp1252_fallback)
codecs.register(_mixed_codec)
_ESCAPED = re.compile("[\udc80-\udcff]")
# UTF-8 characters taken as evidence of UTF-8 rows: not U+0180-U+07FF, where an accented
# capital in Windows-1252 (Ç..ß, 0xC6-0xDF) followed by a closing quote, an ellipsis or a
# degree sign (0x80-0xBF) lands by accident ("ÉTÉ”" is C9 94, valid UTF-8 for "ɔ")
_WIDE = re.compile("[^\\x00-\\x7f\\udc80-\\udcff\\u0180-\\u07ff]")


def mixed_counts(path: Path) -> tuple[int, int]:
    """(characters written as UTF-8 beyond ASCII, bytes that are not UTF-8), when both
    occur; (0, n) for a file with no UTF-8 sequence at all (one legacy encoding)."""
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    wide = bad = 0
    with open(path, "rb") as f:
        while block := f.read(SCAN_BLOCK):
            text = decoder.decode(block)
            wide += len(_WIDE.findall(text))
            bad += len(_ESCAPED.findall(text))
    text = decoder.decode(b"", final=True)
    wide += len(_WIDE.findall(text))
    bad += len(_ESCAPED.findall(text))
    return (wide, bad) if wide and bad else (0, bad)


def _decodes(path: Path, encoding: str) -> bool:
    """Whether the whole file decodes (read in blocks: exports may be larger than memory)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            while block := f.read(SCAN_BLOCK):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _header_line(f: io.TextIOBase) -> str:
    """The header record: up to the first line break outside quotes (headers are rarely
    quoted across lines, but a quoted one must not be cut)."""
    line = ""
    for part in f:
        line += part
        if line.count('"') % 2 == 0:
            break
    return line


def _count_unquoted(line: str, delimiter: str) -> int:
    try:
        fields = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return 0
    return max(len(fields) - 1, 0)


def csv_header(path: str | Path, dialect: CsvDialect | None = None) -> list[str]:
    """The header's column names as written (duplicates kept: pandas renames a second
    ``Labels`` to ``Labels.1``, pyarrow keeps both; neither says so)."""
    dialect = dialect or csv_dialect(path)
    with open(path, encoding=dialect.encoding, newline="", errors="replace") as f:
        for _ in range(dialect.skip_lines + 1):
            header = _header_line(f)
    try:
        return next(csv.reader([header], delimiter=dialect.delimiter), [])
    except csv.Error:
        return []


def pandas_options(path: str | Path, dialect: CsvDialect) -> dict:
    """``pd.read_csv`` arguments for ``dialect``: the hint line skipped; with a trailing
    delimiter, the header's names given (pandas would shift them) plus :data:`TRAILING`."""
    options: dict = {"sep": dialect.delimiter, "encoding": dialect.encoding, "skiprows": dialect.skip_lines}
    if dialect.trailing_field:
        names = _pandas_names(csv_header(path, dialect))
        options.update(header=None, skiprows=dialect.skip_lines + 1, names=[*names, TRAILING])
    return options


def arrow_names(path: str | Path, dialect: CsvDialect) -> tuple[list[str] | None, int]:
    """pyarrow's ``column_names`` (None: from the header) and ``skip_rows`` for ``dialect``."""
    if dialect.trailing_field:
        return [*csv_header(path, dialect), TRAILING], dialect.skip_lines + 1
    return None, dialect.skip_lines


def _pandas_names(names: list[str]) -> list[str]:
    """Repeated names as pandas renames them when it reads a header: Labels, Labels.1, ..."""
    seen: set[str] = set()
    out = []
    for name in names:
        new, n = name, 0
        while new in seen:
            n += 1
            new = f"{name}.{n}"
        seen.add(new)
        out.append(new)
    return out


def first_filled(values: list) -> int | None:
    """The index of the first non-blank value (of the :data:`TRAILING` field), if any."""
    for i, value in enumerate(values):
        if value is not None and str(value).strip():
            return i
    return None
