"""Times as help-desk exports write them, read the same way for a whole column.

``03/04/2024`` is the 3rd of April in Europe and the 4th of March in the United States;
read one value at a time it is silently month-first (pandas' rule), even in a column
whose other rows say ``25/12/2023``. So the order is decided per column, from the values
that can only be read one way: a day above 12 in the first place means day-first, in the
second place month-first. A column with both is refused (it mixes two tools or locales);
a column where every value reads both ways is read month-first unless the values are
dotted (``03.04.2024``: the German, Swiss and Nordic form, always day-first) or the
mapping says ``date_order: day_first``, and the report says which order was taken and why.

Numbers are Unix times (JSON exports write them: seconds or milliseconds), read as such
rather than as pandas' nanoseconds since 1970. Every time comes back aware, in UTC (a
value without a zone is taken as UTC), so times with and without a zone compare.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from triage.errors import InputError

ORDERS = ("day_first", "month_first")
# a date written with its day and month first: 3/4/24, 03-04-2024, 03.04.2024 10:15
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?=$|[\sT,])")
# Unix times of 1973-03 to 2286-11: seconds, or milliseconds (JSON exports, some APIs)
_SECONDS = (1e8, 1e10)
_MILLIS = (1e11, 1e13)
# "10:15 CET", "10:15 PST": abbreviations pandas cannot place (UTC and GMT it reads)
_ZONE_NAME = re.compile(r"\d\s+([A-Z]{2,5})$")
_EXPECTED = "an ISO 8601 date/time, a day/month/year or month/day/year date, or a Unix time"


def parse_times(
    values: list[Any], rows: list[int], fname: str, column: str, order: str | None = None
) -> tuple[list[datetime | None], dict | None]:
    """``(times, note)``: every value as an aware UTC datetime (None stays None), and what the
    report should say about how the column's dates were read (None when nothing to say).

    ``order`` is the mapping's ``date_order`` (``day_first`` / ``month_first``) or None to
    decide from the values; an ``InputError`` names a value the order cannot read."""
    chosen, note = column_order(values, rows, fname, column, order)
    out = []
    for v, row in zip(values, rows):
        out.append(None if v is None else _one(v, chosen, fname, row, column))
    return out, note


def column_order(
    values: list[Any], rows: list[int], fname: str, column: str, order: str | None = None
) -> tuple[str, dict | None]:
    """The order (``day_first`` / ``month_first``) the column's numeric dates are read in,
    and the report's note saying why (module docstring)."""
    day_only = month_only = example = None
    ambiguous = dotted = 0
    for v, row in zip(values, rows):
        m = _NUMERIC_DATE.match(v) if isinstance(v, str) else None
        if m is None:
            continue
        first, second = int(m.group(1)), int(m.group(3))
        if first > 12 and second <= 12:
            day_only = day_only or (row, v)
        elif second > 12 and first <= 12:
            month_only = month_only or (row, v)
        elif first <= 12 and second <= 12:
            ambiguous += 1
            dotted += m.group(2) == "."
            example = example or (row, v)
    if day_only and month_only:
        raise InputError(
            "dates in two orders in one column",
            file=fname,
            column=column,
            expected="one order per column (day/month/year or month/day/year)",
            got=f"row {day_only[0]} {day_only[1]!r} (only day-first) and row {month_only[0]} "
            f"{month_only[1]!r} (only month-first)",
        )
    if order is not None:
        against = month_only if order == "day_first" else day_only
        if against:
            raise InputError(
                f"a date the mapping's date_order: {order} cannot read",
                file=fname,
                row=against[0],
                column=column,
                expected=f"dates written {order.replace('_', ' ')}",
                got=against[1],
            )
        return order, None
    if day_only or month_only:
        chosen = "day_first" if day_only else "month_first"
        row, v = day_only or month_only  # type: ignore[misc]
        because = f"row {row} {v!r} can only be read {chosen.replace('_', '-')}"
        return chosen, _note(column, chosen, because, ambiguous, warn=False)
    if not ambiguous:
        return "month_first", None
    assert example is not None
    if dotted == ambiguous:
        because = "dotted dates (DD.MM.YYYY) are written day-first"
        return "day_first", _note(column, "day_first", because, ambiguous, example=example)
    because = (
        "no value has a day above 12, and month-first is pandas' default; if your tool writes "
        "day-first, set date_order: day_first in the mapping"
    )
    return "month_first", _note(column, "month_first", because, ambiguous, example=example)


def _note(
    column: str,
    chosen: str,
    because: str,
    ambiguous: int,
    *,
    warn: bool = True,
    example: tuple[int, str] | None = None,
) -> dict:
    """The report's entry: machine-readable fields and one sentence for people."""
    eg = f", such as row {example[0]} {example[1]!r}," if example else ""
    message = (
        f"column {column!r}: {ambiguous} date(s){eg} read either day-first or month-first; "
        f"read {chosen.replace('_', '-')} because {because}"
        if ambiguous
        else f"column {column!r}: dates read {chosen.replace('_', '-')} because {because}"
    )
    return {
        "kind": "ambiguous_dates" if warn else "date_order",
        "column": column,
        "chosen": chosen,
        "ambiguous_values": ambiguous,
        "because": because,
        "message": message,
    }


def _one(v: Any, order: str, fname: str, row: int, column: str) -> datetime:
    try:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return _unix(float(v))
        text = str(v).strip()
        if re.fullmatch(r"\d{9,13}(\.\d+)?", text):
            return _unix(float(text))
        m = _NUMERIC_DATE.match(text)
        if m is not None:  # rewritten as ISO: pandas then has nothing left to guess
            a, b, year = int(m.group(1)), int(m.group(3)), m.group(4)
            day, month = (a, b) if order == "day_first" else (b, a)
            if len(year) == 2:  # dateutil's rule: the century that puts it within 50 years of now
                year = str(pd.Timestamp(f"01/01/{year}").year)
            text = f"{year}-{month:02d}-{day:02d}" + text[m.end() :]
        stamp = pd.Timestamp(text)
        if stamp is pd.NaT:
            raise ValueError("not a time")
        # Python's datetime holds microseconds: cut nanoseconds here, not with a warning per row
        return _utc((stamp.floor("us") if stamp.nanosecond else stamp).to_pydatetime())
    except (ValueError, TypeError, OverflowError):
        zone = _ZONE_NAME.search(str(v))
        raise InputError(
            "unparseable time"
            + (
                f" (a zone abbreviation such as {zone.group(1)!r} names no single offset: write "
                "the offset, e.g. +01:00, or export in UTC)"
                if zone
                else ""
            ),
            file=fname,
            row=row,
            column=column,
            expected=_EXPECTED,
            got=v,
        ) from None


def _unix(x: float) -> datetime:
    if _SECONDS[0] <= x < _SECONDS[1]:
        return datetime.fromtimestamp(x, timezone.utc)
    if _MILLIS[0] <= x < _MILLIS[1]:
        return datetime.fromtimestamp(x / 1000, timezone.utc)
    # an Excel serial day (45352.4) or a bare count: read as a time, it would land in 1970
    raise ValueError(f"{x} is not a Unix time in seconds or milliseconds")


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
