"""CSV rows with fewer fields than the header: skipped and counted, or refused when many.

Most often a short row is a line break (or a delimiter) inside a cell the exporting tool
did not quote: the ticket is cut into two records, each short. Padding them, as pandas
does, trains on two wrong rows (the label ``network`` lands in the next row's subject);
refusing the whole file for a few of them, as pyarrow does, makes a desk mend an export
of thousands of rows by hand first. So both readers skip them, the report counts them
and names the first few by row and line, and an export where they are more than
:data:`SHARE` of the rows is refused: its quoting is broken, not a few cells.

Finding them costs a pyarrow pass that reads no cell (0.1-0.3 s of CPU on a 63 MB file).
pyarrow does not say where a short row is (its ``InvalidRow.number`` is None once cells
may hold line breaks), so only when it met some does a second pass, Python's csv reader,
number them: the 1-based record number every other message uses (header excluded), and
the line the record starts on, which a text editor shows.
"""

from __future__ import annotations

import csv
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from triage.errors import InputError

from .csv_dialect import CsvDialect, arrow_names

SHOWN = 3  # short rows quoted in a message
SHARE = 0.01  # more short rows than this share of the records: the export is refused
MIN_ALLOWED = 2  # ...but any export may have this many (one ticket cut in two)
SHORT_ROW = (
    "row has fewer fields than the header (a line break or a delimiter inside a cell that is not quoted?)"
)


@dataclass(frozen=True)
class ShortRows:
    """The short rows of one CSV export: ``rows`` are 1-based record numbers (header excluded,
    short rows counted), ``lines`` the line each starts on, ``texts`` the first few as written."""

    records: int  # every data record in the file, short ones included
    expected: int  # fields per row: the header's
    rows: tuple[int, ...] = ()
    lines: tuple[int, ...] = ()
    texts: tuple[str, ...] = ()

    def allowed(self) -> int:
        """How many short rows the export may have before it is refused (:data:`SHARE`)."""
        return max(MIN_ALLOWED, int(self.records * SHARE))

    def record_numbers(self, start: int, n: int) -> np.ndarray:
        """The 1-based record numbers of the ``n`` rows kept after the first ``start`` kept
        rows: a kept row's number is its place among kept rows plus the short rows before it."""
        kept = np.arange(start + 1, start + n + 1)
        if not self.rows:
            return kept
        skipped = np.asarray(self.rows) - np.arange(len(self.rows))  # kept rows before each
        return kept + np.searchsorted(skipped, kept, side="right")

    def note(self) -> dict | None:
        """The report's warning (None when the export has no short row)."""
        if not self.rows:
            return None
        return {
            "kind": "short_rows",
            "rows": len(self.rows),
            "first": [{"row": r, "line": ln} for r, ln in zip(self.rows[:SHOWN], self.lines[:SHOWN])],
            "message": f"{len(self.rows)} row(s) of {self.records} had fewer fields than the header "
            f"({self.expected}) and were skipped: {self._where()}. Usually a line break inside a "
            "cell the exporting tool did not quote; the row before each may hold only the first "
            "part of its ticket's text",
        }

    def _where(self) -> str:
        shown = [
            f"row {r} (line {ln}: {t[:60]!r})" for r, ln, t in zip(self.rows, self.lines, self.texts[:SHOWN])
        ]
        more = len(self.rows) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")

    def unnumbered(self, path: str | Path) -> InputError:
        """The refusal when two parsers count the export's records differently: the short
        rows cannot be told apart from the rest with certainty."""
        return InputError(
            SHORT_ROW + "; the parsers disagree on where its rows begin, so it cannot be skipped",
            file=str(path),
            expected=f"{self.expected} fields (the header's)",
            got=self._where() if self.rows else "a row pyarrow found short",
        )

    def refusal(self, path: str | Path) -> InputError:
        return InputError(
            f"{len(self.rows)} of {self.records} rows have fewer fields than the header, more than "
            f"{self.allowed()} ({SHARE:.0%} of the rows), so the export's quoting is broken rather "
            "than a few cells: export it again with every cell quoted (or mend those rows)",
            file=str(path),
            expected=f"{self.expected} fields per row (the header's)",
            got=self._where(),
        )


def short_rows(path: Path, dialect: CsvDialect) -> ShortRows:
    """The export's short rows, numbered; an ``InputError`` when they are too many to skip.

    Rows with more fields than the header are not counted here: the readers refuse them.
    Kept per file, size, mtime and dialect: the streamed reader asks once per pass."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, dialect)
    if key not in _FOUND:
        if len(_FOUND) > 64:
            _FOUND.clear()
        _FOUND[key] = _short_rows(Path(path), dialect)
    return _FOUND[key]


_FOUND: dict[tuple, ShortRows] = {}


def _short_rows(path: Path, dialect: CsvDialect) -> ShortRows:
    records, short, expected = _arrow_pass(path, dialect)
    if not short:
        return ShortRows(records=records, expected=expected)
    found = _numbered(path, dialect, expected)
    if len(found.rows) != short:  # the two parsers disagree on records: refuse, as before
        raise found.unnumbered(path)
    if len(found.rows) > found.allowed():
        raise found.refusal(path)
    return found


def arrow_parse_options(dialect: CsvDialect, short: list):  # type: ignore[no-untyped-def]
    """pyarrow's ParseOptions for ``dialect``: a short row is skipped and appended to
    ``short``; a row with more fields stops the read (pyarrow ignores an exception raised in
    its handler, so the row is recorded and "error" returned)."""
    import pyarrow.csv as pacsv

    def handle(row):  # type: ignore[no-untyped-def]
        short.append(row)
        return "skip" if row.actual_columns < row.expected_columns else "error"

    return pacsv.ParseOptions(
        delimiter=dialect.delimiter, newlines_in_values=True, invalid_row_handler=handle
    )


def _arrow_pass(path: Path, dialect: CsvDialect) -> tuple[int, int, int]:
    """(records, short rows, fields per row) by pyarrow, reading no cell. Other parse errors
    are left to the caller's parser: they read the same in both, or both refuse them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    seen: list = []
    names, skip = arrow_names(path, dialect)
    encoding = "utf8" if dialect.encoding in ("utf-8", "utf-8-sig") else dialect.encoding
    kept = 0
    expected = 0
    try:
        with pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                block_size=2 << 20, encoding=encoding, column_names=names, skip_rows=skip
            ),
            parse_options=arrow_parse_options(dialect, seen),
            convert_options=pacsv.ConvertOptions(include_columns=[], include_missing_columns=False),
        ) as reader:
            expected = len(reader.schema.names)
            for batch in reader:
                kept += batch.num_rows
    except (pa.ArrowException, ValueError, OSError):
        pass
    short = sum(row.actual_columns < row.expected_columns for row in seen)
    expected = expected or (seen[0].expected_columns if seen else 0)
    return kept + short, short, expected - dialect.trailing_field


def _numbered(path: Path, dialect: CsvDialect, expected: int) -> ShortRows:
    """Every record's field count by Python's csv reader: the short ones numbered."""
    rows: list[int] = []
    lines: list[int] = []
    texts: list[str] = []
    width = expected + dialect.trailing_field
    records = 0
    last: list[str] = [""]
    with open(path, encoding=dialect.encoding, newline="", errors="replace") as f, _wide_fields():
        reader = csv.reader(f, delimiter=dialect.delimiter)
        for _ in range(dialect.skip_lines + 1):
            next(reader, None)
        start = reader.line_num + 1
        for fields in reader:
            if fields:  # an empty line is no record, for pandas and pyarrow alike
                last = fields
                records += 1
                if len(fields) < width:
                    rows.append(records)
                    lines.append(start)
                    if len(texts) < SHOWN:
                        texts.append(dialect.delimiter.join(fields))
            start = reader.line_num + 1
    # the last record, not the last line: a short row before a final blank line has fields
    if rows and rows[-1] == records and ("\n" in last[-1] or "\r" in last[-1]):
        raise _unclosed(path, rows[-1], lines[-1], dialect.delimiter.join(last))
    return ShortRows(records, expected, tuple(rows), tuple(lines), tuple(texts))


def _unclosed(path: Path, row: int, line: int, text: str) -> InputError:
    """A quote opened in the last record and never closed: the rest of the file was read as
    one cell of one short row. Not a row to skip: everything after it is lost."""
    return InputError(
        f"a quoted cell is never closed: from row {row} (line {line}) to the end of the file, "
        "every line was read as one cell",
        file=str(path),
        expected='a closing " for each opening one (a quote inside a cell is written "")',
        got=text[:120],
    )


@contextmanager
def _wide_fields() -> Iterator[None]:
    """Python's csv reader refuses a field over 128 KB; a rich-text body with an inline image
    is larger, and pyarrow and pandas read it."""
    old = csv.field_size_limit()
    csv.field_size_limit(1 << 30)
    try:
        yield
    finally:
        csv.field_size_limit(old)
