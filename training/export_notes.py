"""What the training report says about an export's shape, beside the rows it counts.

Some shapes train without an error yet mislead: Jira writes one ``Labels`` (or
``Component/s``, ``Comment``) column per value, all under the same name, and the mapping
reads only the first; a label written ``Network`` in some rows and ``network`` in others
becomes two classes. Each note is a dict with a ``kind``, the ``column`` or ``head`` it is
about, and a ``message`` for people: ``report["data"]["warnings"]`` keeps them and
``triage train`` prints them (training/evaluation.py). Dates have their own notes
(training/dates.py).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .csv_dialect import MIXED, csv_header, file_encoding, mixed_counts


def file_notes(path: Path, kind: str, columns: dict[str, str]) -> list[dict]:
    """The notes about the file as a whole: its encoding and its header."""
    return encoding_notes(path, kind) + duplicate_column_notes(path, kind, columns)


def encoding_notes(path: Path, kind: str) -> list[dict]:
    """A note when the file mixes UTF-8 with Windows-1252 bytes (read each as itself,
    training/csv_dialect.py): an export appended to by two tools, worth a look."""
    if kind == "parquet" or file_encoding(path) != MIXED:
        return []
    utf8, other = mixed_counts(path)
    return [
        {
            "kind": "mixed_encoding",
            "column": None,
            "message": f"the file mixes encodings: {utf8} characters are UTF-8 and {other} bytes are not "
            "(read as Windows-1252); each was read as itself, but check a few rows with accents, and "
            "export the file again as UTF-8 if any reads wrong",
        }
    ]


def duplicate_column_notes(path: Path, kind: str, columns: dict[str, str]) -> list[dict]:
    """A note per column name the CSV header has more than once, saying which one is read;
    ``columns`` is the mapping's ``columns()`` (use -> column name)."""
    if kind != "csv":
        return []  # JSON objects keep one value per key; Parquet files are written by code
    names = csv_header(path)
    used = {col: use for use, col in columns.items()}
    notes = []
    for name, n in Counter(names).items():
        if n < 2:
            continue
        places = [i + 1 for i, c in enumerate(names) if c == name]
        reads = (
            f"the mapping's {used[name]} reads only the first (column {places[0]}); "
            "merge them into one column before exporting if the others matter"
            if name in used
            else "the mapping reads none of them"
        )
        notes.append(
            {
                "kind": "duplicate_columns",
                "column": name,
                "positions": places,
                "message": f"the header names {n} columns {name!r} (columns "
                + ", ".join(map(str, places))
                + f"): {reads}",
            }
        )
    return notes


# what tools write in a label column for "no value": trained as a class of its own otherwise
PLACEHOLDERS = {
    "n/a",
    "na",
    "null",
    "none",
    "nil",
    "-",
    "--",
    "?",
    "(empty)",
    "(none)",
    "unassigned",
    "nan",
    "undefined",
}


def label_notes(labels: dict[str, list[str | None]], columns: dict[str, str]) -> list[dict]:
    """A note per head whose classes differ only in letter case or spacing, and per class
    that looks like a missing value ("N/A", "-", "(empty)", "Unassigned"); ``columns`` is
    each head's export column."""
    notes = []
    for head, values in labels.items():
        counts = Counter(v for v in values if v is not None)
        for cls in (c for c in counts if str(c).strip().casefold() in PLACEHOLDERS):
            notes.append(
                {
                    "kind": "placeholder_class",
                    "head": head,
                    "column": columns[head],
                    "classes": [cls],
                    "message": f"labels.{head}: the class {cls!r} ({counts[cls]} rows) looks like a "
                    f"missing value and is trained as a class; if it means no label, add "
                    f"{cls!r}: null under labels.{head}.rename",
                }
            )
        groups: dict[str, list[str]] = {}
        for cls in counts:
            groups.setdefault(" ".join(str(cls).casefold().split()), []).append(str(cls))
        for same in (g for g in groups.values() if len(g) > 1):
            spelled = " / ".join(f"{c!r} ({counts[c]} rows)" for c in sorted(same, key=lambda c: -counts[c]))
            notes.append(
                {
                    "kind": "near_duplicate_classes",
                    "head": head,
                    "column": columns[head],
                    "classes": sorted(same),
                    "message": f"labels.{head}: classes that differ only in case or spacing are "
                    f"trained as separate classes: {spelled}; map them to one name under "
                    f"labels.{head}.rename if they are the same",
                }
            )
    return notes


# a label cell holding several values, as list fields are exported (ServiceNow's comma
# lists, Freshdesk's tags, a "Network; VPN" typed by hand)
_SEPARATOR = re.compile(r"\s*[,;|]\s*")
SHOWN = 3


def multi_value_notes(labels: dict[str, list[str | None]], columns: dict[str, str]) -> list[dict]:
    """A note per head with classes that are several of its other classes in one cell
    ("Network, VPN" beside "Network"): each combination is trained as a class of its own."""
    notes = []
    for head, values in labels.items():
        counts = Counter(v for v in values if v is not None)
        combos = {c: n for c, n in counts.items() if _combination(str(c), counts)}
        if sum(combos.values()) < 2:
            continue
        shown = ", ".join(f"{c!r} ({n} rows)" for c, n in sorted(combos.items(), key=lambda x: -x[1])[:SHOWN])
        notes.append(
            {
                "kind": "multi_value_label",
                "head": head,
                "column": columns[head],
                "rows": sum(combos.values()),
                "message": f"labels.{head}: {sum(combos.values())} rows hold several values in one cell "
                f"({shown}{', ...' if len(combos) > SHOWN else ''}), each combination trained as a class "
                f"of its own; map a column with one value per row, or name each combination's "
                f"class under labels.{head}.rename",
            }
        )
    return notes


def _combination(cls: str, counts: Counter) -> bool:
    parts = [p for p in _SEPARATOR.split(cls) if p]
    return len(parts) > 1 and any(p in counts for p in parts)


def repeated_id_notes(
    ids: list | None, labels: dict[str, list[str | None]], column: str | None
) -> list[dict]:
    """A note when the mapped id repeats: an export of updates, or one row per comment or
    per assignment, trains each row as a ticket of its own, often with labels that disagree."""
    if not ids or column is None:
        return []
    seen = Counter(str(i) for i in ids if i is not None)
    repeated = {i: n for i, n in seen.items() if n > 1}
    if not repeated:
        return []
    per_id: dict[str, set] = {}
    for row, i in enumerate(ids):
        if i is not None and str(i) in repeated:
            per_id.setdefault(str(i), set()).update(
                (h, v[row]) for h, v in labels.items() if v[row] is not None
            )
    disagree = sum(len({h for h, _ in pairs}) < len(pairs) for pairs in per_id.values())
    shown = ", ".join(f"{i!r} ×{n}" for i, n in sorted(repeated.items(), key=lambda x: -x[1])[:SHOWN])
    return [
        {
            "kind": "repeated_id",
            "column": column,
            "ids": len(repeated),
            "rows": sum(repeated.values()),
            "message": f"metadata.id ({column!r}): {len(repeated)} ids appear on more than one row "
            f"({shown}; {sum(repeated.values())} rows), {disagree} of them with labels that disagree; "
            "each row is trained as a ticket of its own: is this an export of updates or comments? "
            "Export one row per ticket (its latest state) if so",
        }
    ]
