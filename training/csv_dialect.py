"""How a CSV export is written: its character encoding and its delimiter.

Help desks export CSV in more than one way: Excel and European locales write ``;``
(or tabs, as "Unicode text" in UTF-16), older tools write Windows-1252 or Latin-1 bytes,
and many put a byte-order mark first. Read as UTF-8 with commas, such a file either fails
deep in a parser or, worse, trains on one big column or on replacement characters. The
in-memory reader (pandas) and the streamed one (pyarrow) both ask this module first, so
they read a file the same way.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
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


def csv_dialect(path: str | Path) -> CsvDialect:
    """The encoding (by byte-order mark, else UTF-8 when every byte decodes as UTF-8, else
    Windows-1252, else Latin-1, which decodes anything) and the delimiter of the header."""
    path = Path(path)
    encoding = _encoding(path)
    with open(path, encoding=encoding, newline="", errors="replace") as f:
        header = _header_line(f)
    delimiter = max(DELIMITERS, key=lambda d: _count_unquoted(header, d))
    if _count_unquoted(header, delimiter) == 0:
        delimiter = ","  # one column, or an empty file: the readers say so themselves
    if encoding not in ("utf-8", "utf-8-sig") or delimiter != ",":
        log.info("%s read as %s with delimiter %r", path, encoding, delimiter)
    return CsvDialect(encoding, delimiter)


def _encoding(path: Path) -> str:
    with open(path, "rb") as f:
        start = f.read(4)
    for bom, name in BOMS:
        if start.startswith(bom):
            return name
    for name in ("utf-8", "cp1252"):
        if _decodes(path, name):
            return name
    return "latin-1"


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
        header = _header_line(f)
    try:
        return next(csv.reader([header], delimiter=dialect.delimiter), [])
    except csv.Error:
        return []
