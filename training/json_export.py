"""JSON exports as help-desk tools write them, for both readers.

JSON Lines (one object per line) is what Zendesk's and Freshdesk's bulk exports write; but
a ``.json`` file from an API or an "export as JSON" button is often one document: an
array of records, or an object holding them (Jira ``{"issues": [...]}``, ServiceNow
``{"result": [...]}``, ``{"records": [...]}``, ``{"tickets": [...]}``). Records nest
objects (Zendesk ``"via": {"channel": "email"}``, Jira ``"fields": {"summary": ...}``): a
mapping naming ``via`` would train on the text of a Python dict, so nested objects are
spread into dotted columns (``via.channel``, ``fields.summary``) the mapping can name.

Dates are left as written (``dtype=False`` turns pandas' date conversion off too): pandas
would otherwise read a ``created_at`` or ``date`` column month-first before
training/dates.py could decide the column's order.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from triage.errors import InputError

from .csv_dialect import file_encoding

# read so much of a .json file to tell a document from JSON Lines
_SNIFF = 1 << 16


def read_kwargs(path: Path) -> dict[str, Any]:
    """What both readers pass to ``pd.read_json`` for JSON Lines: the file's encoding too
    (JSON should be UTF-8, but Notepad writes a byte-order mark first, Windows PowerShell's
    ``ConvertTo-Json | Out-File`` writes UTF-16, older tools Windows-1252)."""
    # dtype=False: no date conversion either (pandas 3)
    return {"lines": True, "dtype": False, "encoding": file_encoding(path)}


def is_document(path: Path) -> bool:
    """Whether a ``.json`` file is one JSON document (array or object) rather than JSON Lines."""
    if path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as f:
        head = f.read(_SNIFF).decode(file_encoding(path), "replace").lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        return True
    first, _, rest = head.partition("\n")
    try:
        json.loads(first)
    except ValueError:
        return True  # an object spread over lines: a document
    return not rest.strip()  # one object on one line: a document that may wrap records


def document_records(path: Path) -> pd.DataFrame:
    """The records of a JSON document: the array itself, or the longest array of objects
    directly under the top-level object (``issues``, ``result``, ``records``, ...)."""
    try:
        doc = json.loads(path.read_bytes().decode(file_encoding(path)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the export as JSON: {exc}", file=str(path)) from None
    records = doc if isinstance(doc, list) else None
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        records = max(lists, key=len) if lists else [doc]
    if records is None or not all(isinstance(r, dict) for r in records):
        raise InputError(
            "cannot read the export as JSON",
            file=str(path),
            expected="an array of objects, an object holding one, or one JSON object per line",
            got=f"a JSON {type(doc).__name__}" + (" of other values" if isinstance(doc, list) else ""),
        )
    return flatten(pd.DataFrame.from_records(records)) if records else pd.DataFrame()


def flatten(df: pd.DataFrame) -> pd.DataFrame:
    """Nested objects spread into dotted columns (``via`` → ``via.channel``, ...); a frame
    without any is returned as it is."""
    nested = [c for c in df.columns if df[c].map(lambda v: isinstance(v, dict)).any()]
    if not nested:
        return df
    spread = pd.json_normalize(df.to_dict("records"))
    spread.index = df.index
    return spread


@contextmanager
def quiet() -> Iterator[None]:
    """Lines of arrays are refused by the caller (``json_objects``), not warned about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
