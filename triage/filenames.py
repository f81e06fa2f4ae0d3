"""Attachment file names from outside (mail, uploads, winmail.dat), made safe to keep and show.

One rule for every path that stores a file: no directories ("../../etc/passwd",
"C:\\\\evil.exe"), no control characters, never empty, at most 200 characters, and no
bidirectional controls. An agent reads "invoice\\u202efdp.exe" as "invoiceexe.pdf": the
right-to-left override is the classic way to dress an executable as a document, and a name
never needs one (the text of a right-to-left script shows right to left without it).
"""

from __future__ import annotations

import re

MAX_CHARS = 200
# C0, DEL, C1; the bidirectional marks, embeddings, overrides and isolates (U+061C, U+200E,
# U+200F, U+202A-U+202E, U+2066-U+2069); the quote and separators a header or path would split on
_UNSAFE = re.compile('[\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069"]')


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """The last path segment of ``name`` without unsafe characters, or ``fallback``."""
    name = _UNSAFE.sub("", (name or "").replace("\\", "/")).split("/")[-1].strip(" .")
    return (name or fallback)[:MAX_CHARS]
