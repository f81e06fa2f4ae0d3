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

from .export_notes import PLACEHOLDERS
from .mapping import parse_mapping

SAMPLE_ROWS = 5_000
MAX_CLASSES = 200  # more distinct values than this in the sample: not a label a head can learn

# Column names per use, compared without case, accents' spacing or punctuation: each tool's
# and several languages' words (ServiceNow, Jira/JSM, Zendesk, Freshdesk, osTicket, GLPI,
# OTRS/Znuny, the shared exports' own).
_WORDS = {
    "subject": (
        "subject|title|summary|short description|shortdescription|ticket title|titre|"
        "sujet|betreff|titel|asunto|titulo|titolo|oggetto|onderwerp|assunto|rubrik|"
        "issue summary|name"
    ),
    "body": (
        "description|body|details|text|content|message|document|problem|"
        "long description|issue description|first message|ticket description|"
        "beschreibung|inhalt|nachricht|descripcion|descrizione|beschrijving|descricao|"
        "beskrivning|comment|comments|note|request"
    ),
    "id": (
        "id|ticket id|ticketid|ticket number|ticketnumber|number|issue key|key|issue id|"
        "ticket|ticket no|case number|incident number|nummer|numero"
    ),
    "created_at": (
        "created|created at|createdat|created time|created date|creation date|"
        "date created|opened|opened at|opened_at|sys created on|submitted|submitted at|"
        "reported|reported date|open date|date|date d'ouverture|date de creation|"
        "erstellt|erstellt am|fecha de creacion|data di creazione"
    ),
    "channel": "channel|source|via|via channel|contact type|origin|quelle|canal|origine",
    "requester": (
        "requester|requester email|reporter|caller|caller id|from|from email|customer|"
        "customer email|email|requested by|demandeur|customerid|customer id|"
        "customeruser|kunde|solicitante"
    ),
    "customer_tier": "tier|customer tier|plan|sla plan|customer plan|segment",
    "affected_service": (
        "service|business service|affected service|cmdb ci|configuration item|"
        "application|product|system|dienst"
    ),
    "team": (
        "team|group|assignment group|assigned group|group id|group name|queue|"
        "department|support group|resolver group|topic group|assigned team|"
        "attribue a groupe|groupe|gruppe|grupo|gruppo|component|components|component s"
    ),
    "type": ("type|ticket type|issue type|kind|request type|incident type|record type|typ|tipo|ticket_type"),
    "priority": "priority|prio|priorite|prioritat|prioridad|priorita|severity",
    "impact": "impact|auswirkung|impacto",
    "urgency": "urgency|urgence|dringlichkeit|urgencia|urgenza",
    "category": (
        "category|categorie|kategorie|categoria|help topic|topic|subcategory|"
        "sub category|sub category1|classification|service category"
    ),
}
NAMES: dict[str, tuple[str, ...]] = {use: tuple(words.split("|")) for use, words in _WORDS.items()}
# in this order: the first head stratifies a sample (--max-rows), and the team is most often wanted
LABEL_HEADS = ("team", "type", "category", "priority", "impact", "urgency")
METADATA = ("id", "created_at", "channel", "requester", "customer_tier", "affected_service")
# outcomes and bookkeeping, not what a ticket is when it arrives: never drafted as labels
NOT_LABELS = (
    "status",
    "state",
    "resolution",
    "resolved",
    "closed",
    "updated",
    "assignee",
    "agent",
    "satisfaction",
    "rating",
    "sla",
    "due",
    "overdue",
    "answered",
    "count",
    "escalat",
    "time",
)


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


def _key(name: str) -> str:
    """A column name as compared with :data:`NAMES`: no case, accents, punctuation or extra spaces."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    plain = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", plain)  # camelCase, TicketNumber
    return " ".join(re.sub(r"[^a-z0-9']+", " ", plain.casefold().replace("/", " ")).split())


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
    words = [_key(w) for w in NAMES[use]]
    free = [c for c in columns if c not in taken]
    for word in words:
        for c in free:
            if _key(c) == word:
                return c
    for word in words:
        for c in free:
            key = _key(c)
            if len(word) > 3 and (key.endswith(" " + word) or key.startswith(word + " ")):
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
        name = take(head, lambda c: c.labelish(rows))
        if name is not None:
            d.labels[head] = name
    for use in METADATA:
        ok = {"created_at": lambda c: c.dates or c.numeric, "id": lambda c: c.distinct >= c.filled * 0.9}
        name = take(use, ok.get(use, lambda c: c.filled > 0))
        if name is not None:
            d.metadata[use] = name
    d.others = [
        c
        for c in columns
        if c not in taken and prof[c].labelish(rows) and not any(w in _key(c) for w in NOT_LABELS)
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
        and not any(w in _key(c) for w in NOT_LABELS)
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
    out.append("# min_class_count: 5   # drop classes rarer than this (each is counted in the report)")
    return "\n".join(out) + "\n"


def use_name(column: str) -> str:
    """A head name for a column: its words joined by underscores."""
    return "_".join(_key(column).replace("'", "").split())[:40] or "label"


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
        guess = d.others.pop(0)
        d.labels[use_name(guess)] = guess
        d.notes.append(f"no column is named like a team, type or priority: {d.labels} is a guess")
    text = render(d, prof, str(path), seen)
    mapping = parse_mapping(yaml.safe_load(text), source="the draft")  # always a mapping train accepts
    check_columns(columns, mapping, str(path))
    return text
