"""A first mapping YAML drafted from an export's columns: a newcomer's first step.

A desk's export names its columns as its tool does (ServiceNow ``short_description`` and
``assignment_group``, Jira ``Summary`` and ``Issue Type``, Zendesk ``subject`` and
``group_id``, GLPI ``Titre``, OTRS ``Queue``...). Writing the mapping by hand means
reading the header, guessing which column is the body and which are labels, and getting
YAML quoting right for names such as ``Attribué à - Groupe``. Here the columns are
matched by name (many tools' and languages' words, :data:`NAMES`) and checked against
the first rows' values: a body is long text, a label repeats a few values, an id or a
date is neither. What is left unsure is said in comments beside each line, with the
other columns that could serve, so the draft is read and corrected, not trusted blindly.
The draft is parsed back through :func:`~training.mapping.parse_mapping` before it is
shown, so it is always a mapping ``triage train`` accepts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from triage.errors import InputError

from .column_names import NAMES, NOT_LABELS, key
from .export_notes import PLACEHOLDERS
from .mapping import parse_mapping

SAMPLE_ROWS = 5_000
MAX_CLASSES = 200  # more distinct values than this in the sample: not a label a head can learn

# in this order: the first head stratifies a sample (--max-rows), and the team is most often wanted
LABEL_HEADS = ("team", "type", "category", "priority", "impact", "urgency")
METADATA = ("id", "created_at", "channel", "requester", "customer_tier", "affected_service")


@dataclass
class Column:
    """What the first rows say about one column."""

    name: str
    filled: int = 0
    distinct: int = 0
    mean_length: float = 0.0
    top: list[tuple[str, int]] = field(default_factory=list)
    numeric: bool = False
    dates: bool = False
    emails: bool = False

    def labelish(self, rows: int) -> bool:
        """Repeats a few values: something a head can learn (2..MAX_CLASSES classes, each
        seen more than once on average, not free text, not an id or a time)."""
        return (
            self.filled >= max(2, rows // 5)
            and 2 <= self.distinct <= MAX_CLASSES
            and self.distinct <= self.filled / 2
            and self.mean_length < 60
            and not self.dates
            and not self.emails
        )

    def texty(self) -> bool:
        return self.mean_length >= 15 and not self.dates and not self.emails and not self.numeric

    def summary(self) -> str:
        if (
            self.distinct <= MAX_CLASSES
            and self.top
            and self.mean_length < 60
            and self.distinct <= self.filled / 2
        ):
            shown = ", ".join(f"{v[:30]} ({n})" for v, n in self.top[:4])
            return f"{self.distinct} values: {shown}{', ...' if self.distinct > 4 else ''}"
        return f"{self.filled} filled, {self.mean_length:.0f} characters on average"


_DATE = re.compile(r"^\s*(\d{4}-\d\d-\d\d|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}|\d{1,2}/[A-Za-z]{3}/\d{2})")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.\w+$")


def profile(df: pd.DataFrame) -> dict[str, Column]:
    """Per column: how filled, how many values, how long, what kind."""
    out: dict[str, Column] = {}
    for i, name in enumerate(df.columns):
        if str(name) in out:  # a repeated name (Jira's Labels): the mapping reads the first
            continue
        values = [v for v in df.iloc[:, i].tolist() if v is not None and str(v).strip()]
        if values and isinstance(values[0], (list, dict)):
            out[str(name)] = Column(str(name), filled=len(values), distinct=len(values), mean_length=0)
            continue
        texts = [str(v).strip() for v in values]
        counts = Counter(texts)
        sample = texts[:200]
        codes = [t for t in sample if t.casefold() not in PLACEHOLDERS]  # "N/A" among codes
        col = Column(
            str(name),
            filled=len(texts),
            distinct=len(counts),
            mean_length=sum(map(len, texts)) / len(texts) if texts else 0.0,
            top=counts.most_common(6),
            numeric=bool(codes) and all(re.fullmatch(r"-?\d+(\.\d+)?", t) for t in codes),
            dates=bool(sample) and sum(bool(_DATE.match(t)) for t in sample) > 0.8 * len(sample),
            emails=bool(sample) and sum(bool(_EMAIL.match(t)) for t in sample) > 0.8 * len(sample),
        )
        out[str(name)] = col
    return out


def _by_name(use: str, columns: list[str], taken: set[str]) -> str | None:
    """The first free column named as ``use`` is called in :data:`NAMES` (exact words first,
    then a name that ends with one: ``Custom field (Request Type)``, ``Attribué à - Groupe``)."""
    words = [key(w) for w in NAMES[use]]
    free = [c for c in columns if c not in taken]
    for word in words:
        for c in free:
            if key(c) == word:
                return c
    for word in words:
        for c in free:
            name = key(c)
            if not word.isascii() and word in name:  # CJK names run together: 担当グループ
                return c
            if len(word) > 3 and (name.endswith(" " + word) or name.startswith(word + " ")):
                return c
    return None


@dataclass
class Draft:
    """The columns chosen per use, and what to say about each in the YAML."""

    subject: str | None = None
    body: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said at the top of the YAML
    others: list[str] = field(default_factory=list)  # label-like columns left out
    # head -> (other head, its value where this head is fixed, the fixed value, rows, its other values)
    fixed: dict[str, tuple[str, str, str, int, list[str]]] = field(default_factory=dict)


def choose(columns: list[str], prof: dict[str, Column], rows: int) -> Draft:
    """Which column serves which use: by name, checked against the values (module docstring)."""
    d = Draft()
    taken: set[str] = set()

    def take(use: str, ok) -> str | None:  # type: ignore[no-untyped-def]
        name = _by_name(use, columns, taken)
        while name is not None and not ok(prof[name]):
            d.notes.append(
                f"{name!r} is named like {use.replace('_', ' ')} but {_why_not(use, prof[name], rows)}"
            )
            taken.add(name)
            name = _by_name(use, columns, taken)
        if name is not None:
            taken.add(name)
        return name

    d.body = take("body", lambda c: c.texty())
    d.subject = take("subject", lambda c: c.mean_length >= 4 and not c.numeric and not c.dates)
    if d.body is None:
        d.body = _longest_text(columns, prof, taken, rows)
        if d.body is not None:
            taken.add(d.body)
            d.notes.append(f"no column is named like a description: {d.body!r} holds the longest texts")
    if d.body is None and d.subject is not None:
        d.body, d.subject = d.subject, None
        d.notes.append("the export has no description column: the title alone is the ticket's text")
    for head in LABEL_HEADS:
        # a named label over codes: Zendesk's group.name beside group.id, both named like a team
        words = _by_name(
            head, columns, taken | {c for c in columns if prof[c].numeric or not prof[c].labelish(rows)}
        )
        name = words if words is not None else take(head, lambda c: c.labelish(rows))
        if name is not None:
            taken.add(name)
            d.labels[head] = name
    for use in METADATA:
        ok = {"created_at": lambda c: c.dates or c.numeric, "id": lambda c: c.distinct >= c.filled * 0.9}
        name = take(use, ok.get(use, lambda c: c.filled > 0))
        if name is not None:
            d.metadata[use] = name
    d.others = [
        c
        for c in columns
        if c not in taken and prof[c].labelish(rows) and not any(w in key(c) for w in NOT_LABELS)
    ]
    return d


def _why_not(use: str, col: Column, rows: int) -> str:
    if use in LABEL_HEADS:
        if col.distinct < 2:
            return f"holds one value only ({col.top[0][0]!r})" if col.top else "is empty"
        if col.filled < max(2, rows // 5):
            return f"is filled in {col.filled} of {rows} rows read only"
        if col.mean_length >= 60 or col.distinct > col.filled / 2:
            return f"holds {col.distinct} different values in {col.filled} rows, not a few classes"
        return "its values look like times or e-mail addresses"
    if use == "body":
        return f"holds short values ({col.summary()})"
    return f"its values do not fit ({col.summary()})"


def _longest_text(columns: list[str], prof: dict[str, Column], taken: set[str], rows: int) -> str | None:
    texts = [
        c
        for c in columns
        if c not in taken
        and prof[c].texty()
        and not prof[c].labelish(rows)
        and not any(w in key(c) for w in NOT_LABELS)
    ]
    return max(texts, key=lambda c: prof[c].mean_length) if texts else None


def _q(name: str) -> str:
    """A column name as a YAML scalar: JSON's double-quoted string is valid YAML."""
    return json.dumps(str(name), ensure_ascii=False)


def render(d: Draft, prof: dict[str, Column], source: str, seen: str) -> str:
    """The draft as commented YAML."""
    out = [
        f"# Drafted by `triage mapping` from {source} ({seen}).",
        "# Read every line: the columns were chosen by their names and first values. Then:",
        f"#   triage train --data {source} --mapping THIS_FILE",
        *(f"# note: {n}" for n in d.notes),
        "text:",
    ]
    if d.subject:
        out.append(f"  subject: {_q(d.subject)}   # {prof[d.subject].summary()}")
    out.append(f"  body: {_q(d.body)}   # {prof[str(d.body)].summary()}")
    if d.metadata:
        out.append("metadata:   # used by rules and reports, not learnt from")
        out += [f"  {use}: {_q(col)}" for use, col in d.metadata.items()]
    out.append("labels:     # one head per line: what the model learns to predict")
    for head, col in d.labels.items():
        out += _label_lines(head, prof[col])
    if "impact" in d.labels and "urgency" in d.labels and "priority" not in d.labels:
        out.append(
            "# priority: {derive_from: [impact, urgency]}   # ITIL matrix; name the codes first (rename)"
        )
    if d.others:
        out.append("# other columns that repeat a few values (add any that a head should learn):")
        out += [f"#   {use_name(c)}: {_q(c)}   # {prof[c].summary()}" for c in d.others]
    if d.fixed:
        out.append(
            "# filters: a head whose value is fixed by another head's on most rows learns that head there"
        )
        out.append("# filters:")
        for head, (other, value, same, n, rest) in d.fixed.items():
            out.append(
                f"#   {head}: {{where: {{{other}: {json.dumps(rest, ensure_ascii=False)}}}}}   "
                f"# {head} is {same!r} on all {n} rows where {other} is {value!r}"
            )
    out.append("# min_class_count: 5   # drop classes rarer than this (each is counted in the report)")
    return "\n".join(out) + "\n"


def use_name(column: str) -> str:
    """A head name for a column: its words joined by underscores."""
    return "_".join(key(column).replace("'", "").split())[:40] or "label"


def _label_lines(head: str, col: Column) -> list[str]:
    rename = {v: None for v, _ in col.top if v.strip().casefold() in PLACEHOLDERS}
    spec = f"{{column: {_q(col.name)}"
    if rename:
        spec += ", rename: {" + ", ".join(f"{_q(v)}: null" for v in rename) + "}"
    lines = [f"  {head}: {spec}}}   # {col.summary()}"]
    if rename:
        lines.append(f"  #   {', '.join(map(repr, rename))} read as no label (rename to null)")
    if col.numeric:
        lines.append("  #   codes: name them with rename: {CODE: NAME} so reports and rules read words")
    return lines


def sample_rows(chunks: Iterable[pd.DataFrame], size: int, seed: int = 0) -> tuple[pd.DataFrame, int]:
    """An even sample of ``size`` rows from the whole export read in slices, and its row count:
    an export sorted by date, team or type shows only some values in its first rows (the
    shared Endava export's first 2,000 rows are all one ticket type). Each row gets a random
    key and the ``size`` smallest keys are kept, so memory is the sample, not the file."""
    rng = np.random.default_rng(seed)
    kept: pd.DataFrame | None = None
    keys = np.zeros(0)
    total = 0
    for chunk in chunks:
        total += len(chunk)
        chunk_keys = rng.random(len(chunk))
        kept = chunk if kept is None else pd.concat([kept, chunk])
        keys = np.concatenate([keys, chunk_keys])
        if len(kept) > size:
            best = np.sort(np.argpartition(keys, size)[:size])  # file order kept
            kept, keys = kept.iloc[best], keys[best]
    return (kept if kept is not None else pd.DataFrame()), total


def fixed_heads(df: pd.DataFrame, labels: dict[str, str]) -> dict[str, tuple[str, str, str, int, list[str]]]:
    """Heads whose value one value of another head fixes, on most of the rows: in the
    shared Endava export every service request (89 %) has urgency 3 and impact 4, so urgency
    and impact heads over all rows mostly learn the ticket type. Per head, the largest such
    (other head, its value, this head's one value, rows, the other head's other values). Two
    columns that fix each other on every row (a priority derived from urgency) are not this."""
    found: dict[str, tuple[str, str, str, int, list[str]]] = {}
    cells = {h: df[c].astype(object).where(df[c].notna(), None).map(_cell) for h, c in labels.items()}
    for head, values in cells.items():
        for other, by in cells.items():
            if other == head:
                continue
            both = pd.DataFrame({"v": values, "by": by}).dropna()
            if both.empty or both["v"].nunique() < 2:
                continue
            for value, group in both.groupby("by"):
                n = len(group)
                if n >= 0.5 * len(both) and group["v"].nunique() == 1 and n < len(both):
                    rest = both[both["by"] != value]
                    varies = (rest.groupby("by")["v"].nunique() > 1).any()  # not derived everywhere
                    if varies and n > found.get(head, ("", "", "", 0, []))[3]:
                        others = sorted(map(str, rest["by"].unique()))
                        found[head] = (other, str(value), str(group["v"].iloc[0]), n, others)
    return found


def _cell(value: object) -> str | None:
    return None if value is None or not str(value).strip() else str(value).strip()


def draft_mapping(path: str | Path) -> str:
    """The commented YAML draft for the export at ``path``; an ``InputError`` when no column
    can be the text or no column looks like a label (naming what each column holds)."""
    import yaml

    from .mapping import check_columns
    from .stream import export_columns, frames

    path = Path(path)
    columns = list(dict.fromkeys(export_columns(path)))
    df, total = sample_rows(frames(path, columns), SAMPLE_ROWS)
    if not total:
        raise InputError("the export has no rows to draft a mapping from", file=str(path))
    prof = profile(df)
    d = choose(columns, prof, len(df))
    seen = f"{total} rows" if total == len(df) else f"{len(df)} rows drawn evenly from its {total}"
    listing = "; ".join(f"{c!r}: {prof[c].summary()}" for c in columns[:30])
    if d.body is None:
        raise InputError(
            "no column looks like the tickets' text",
            file=str(path),
            expected="a column of words",
            got=listing,
        )
    if not d.labels:
        if not d.others:
            raise InputError(
                "no column looks like a label (a few values repeated over the rows)",
                file=str(path),
                expected="a column such as a team, type, category or priority",
                got=listing,
            )
        guess = min(d.others, key=lambda c: (prof[c].mean_length, prof[c].distinct))
        d.others.remove(guess)
        d.labels[use_name(guess)] = guess
        d.notes.append(f"no column is named like a team, type or priority: {d.labels} is a guess")
    d.fixed = fixed_heads(df, d.labels)
    text = render(d, prof, str(path), seen)
    mapping = parse_mapping(yaml.safe_load(text), source="the draft")  # always a mapping train accepts
    check_columns(columns, mapping, str(path))
    return text
