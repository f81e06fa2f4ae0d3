"""Column mappings and export loading: any help-desk export, no code change.

A mapping YAML says which columns of an export hold the text, the metadata and
each label, how label codes are renamed, and on which rows a head is trained.
Bad input raises :class:`InputError` naming the file, the row (1-based record
number, header excluded) and the column, with what was expected and what came.
Nothing is dropped silently: every dropped row is counted by reason, and rows
that merely lack one label are kept for the other heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from triage.bundle import file_sha256
from triage.errors import ConfigError, InputError
from triage.htmltext import html_to_text, looks_like_html
from triage.priority import PriorityMatrix
from triage.text import model_text, normalise

from .compressed import inner_name, plain_export, renamed
from .csv_dialect import TRAILING, csv_dialect, first_filled, pandas_options
from .dates import ORDERS, parse_times
from .export_notes import file_notes, label_notes, multi_value_notes, repeated_id_notes
from .json_export import document_records, flatten, is_document, quiet, read_kwargs
from .short_rows import ShortRows, short_rows

METADATA_FIELDS = ("channel", "customer_tier", "affected_service", "requester", "created_at", "id")
_TOP_KEYS = {
    "text",
    "metadata",
    "labels",
    "priority",
    "filters",
    "strict",
    "min_class_count",
    "drop_empty_text",
    "date_order",
}
READERS = {
    ".csv": "csv",
    ".tsv": "csv",  # the delimiter is detected (training/csv_dialect.py)
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# what a reader expects of the file, said when it cannot read one
_SHAPE = {"csv": "", "parquet": "", "jsonl": " (one JSON object per line)"}


@dataclass
class LabelSpec:
    column: str
    # CODE -> LABEL; a code renamed to null (or "") is a missing label: "N/A", "-", "(empty)"
    rename: dict[str, str | None] = field(default_factory=dict)
    where: dict[str, list[str]] = field(default_factory=dict)
    min_class_count: int = 0


@dataclass
class Mapping:
    """A parsed mapping file (see the module docstring for the YAML shape)."""

    body: str
    subject: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    labels: dict[str, LabelSpec] = field(default_factory=dict)
    derive_priority: list[str] = field(default_factory=list)
    matrix: PriorityMatrix | None = None
    strict: bool = False
    drop_empty_text: bool = False
    source: str | None = None
    # how dates such as 03/04/2024 are read: day_first, month_first, or None (from the values)
    date_order: str | None = None

    def columns(self) -> dict[str, str]:
        """Every export column the mapping names, keyed by what it is used for."""
        cols = {"text.body": self.body, **({"text.subject": self.subject} if self.subject else {})}
        cols.update({f"metadata.{k}": v for k, v in self.metadata.items()})
        cols.update({f"labels.{k}": s.column for k, s in self.labels.items()})
        return cols

    def priority_config(self) -> dict | None:
        if not self.derive_priority:
            return None
        return {"derive_from": self.derive_priority, "matrix": (self.matrix or PriorityMatrix()).to_dict()}


def _code(value: Any) -> str:
    """A label code as text: ``1``, ``1.0`` and ``"1"`` are the same code."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
        text = text[:-2]
    return text


def _need(cond: bool, message: str, source: str) -> None:
    if not cond:
        raise ConfigError(message, file=source)


def load_mapping(path: str | Path) -> Mapping:
    """Parse and validate a mapping YAML; a ``ConfigError`` names the file and the problem."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("mapping file not found", file=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {exc}", file=source, line=mark.line + 1 if mark else None) from None
    return parse_mapping(raw, source=source)


def parse_mapping(raw: Any, *, source: str = "<mapping>") -> Mapping:
    _need(isinstance(raw, dict), f"expected a mapping at the top level, got {type(raw).__name__}", source)
    unknown = set(raw) - _TOP_KEYS
    _need(not unknown, f"unknown keys {sorted(unknown)}: expected some of {sorted(_TOP_KEYS)}", source)
    text = raw.get("text") or {}
    _need(
        isinstance(text, dict) and text.get("body"),
        f"text: expected {{body: COLUMN, subject: COLUMN}} (body required), got {text!r}",
        source,
    )
    meta = raw.get("metadata") or {}
    bad = set(meta) - set(METADATA_FIELDS)
    _need(
        not bad, f"metadata: unknown fields {sorted(bad)}: expected some of {list(METADATA_FIELDS)}", source
    )
    m = Mapping(
        body=str(text["body"]),
        subject=text.get("subject"),
        metadata={k: str(v) for k, v in meta.items()},
        strict=bool(raw.get("strict", False)),
        drop_empty_text=bool(raw.get("drop_empty_text", False)),
        source=source,
        date_order=raw.get("date_order"),
    )
    _need(
        m.date_order in (None, *ORDERS),
        f"date_order: expected one of {list(ORDERS)}, got {m.date_order!r}",
        source,
    )
    default_min = int(raw.get("min_class_count", 0) or 0)
    for name, spec in (raw.get("labels") or {}).items():
        m.labels[str(name)] = _label_spec(name, spec, default_min, source)
    _parse_priority(raw.get("priority"), m, default_min, source)
    for name, flt in (raw.get("filters") or {}).items():
        _need(
            name in m.labels,
            f"filters.{name}: no label head of that name (heads: {sorted(m.labels)})",
            source,
        )
        where = (flt or {}).get("where")
        _need(
            isinstance(where, dict) and where and set(where) <= set(m.labels),
            f"filters.{name}.where: expected {{HEAD: VALUE or [VALUES]}} over the heads "
            f"{sorted(m.labels)}, got {where!r}",
            source,
        )
        m.labels[name].where = {
            str(k): [_code(x) for x in (v if isinstance(v, list) else [v])] for k, v in where.items()
        }
    _need(bool(m.labels), "labels: expected at least one label column to train on", source)
    return m


def _label_spec(name: Any, spec: Any, default_min: int, source: str) -> LabelSpec:
    if isinstance(spec, str):
        spec = {"column": spec}
    _need(
        isinstance(spec, dict) and spec.get("column"),
        f"labels.{name}: expected {{column: COLUMN, rename: {{CODE: LABEL}}}}, got {spec!r}",
        source,
    )
    rename = spec.get("rename") or {}
    _need(isinstance(rename, dict), f"labels.{name}.rename: expected a mapping, got {rename!r}", source)
    return LabelSpec(
        column=str(spec["column"]),
        rename={_code(k): None if v is None or str(v).strip() == "" else str(v) for k, v in rename.items()},
        min_class_count=int(spec.get("min_class_count", default_min) or 0),
    )


def _parse_priority(prio: Any, m: Mapping, default_min: int, source: str) -> None:
    if prio is None:
        return
    _need(isinstance(prio, dict), f"priority: expected a mapping, got {prio!r}", source)
    if "column" in prio:
        m.labels["priority"] = _label_spec("priority", prio, default_min, source)
        return
    derive = prio.get("derive_from")
    _need(
        isinstance(derive, list) and len(derive) == 2 and set(derive) <= set(m.labels),
        f"priority.derive_from: expected [IMPACT_HEAD, URGENCY_HEAD] among the heads "
        f"{sorted(m.labels)}, got {derive!r}",
        source,
    )
    m.derive_priority = [str(d) for d in derive]
    m.matrix = PriorityMatrix.from_config(prio.get("matrix"), source=source)


# ---------------------------------------------------------------------------- exports
@dataclass
class Dataset:
    """An export read through a mapping: model texts, labels per head, and the counts."""

    path: Path
    sha256: str
    texts: list[str]
    labels: dict[str, list[str | None]]
    metadata: dict[str, list[Any]]
    source_rows: list[int]
    counts: dict[str, Any]
    # the normalised subject per row (None without a subject column): explanations cite it
    subjects: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


def export_kind(path: Path) -> str:
    """The reader an export's extension names (csv, jsonl, parquet); a clear error for any
    other extension or a missing file. The in-memory and the streamed readers both ask it."""
    suffix = Path(inner_name(path)).suffix.lower()  # tickets.csv.gz, a zip: what they hold
    kind = READERS.get(suffix)
    if kind is None:
        spreadsheet = suffix in (".xlsx", ".xls", ".xlsm", ".ods", ".numbers")
        raise InputError(
            "unsupported export format"
            + ("; save the sheet as CSV first (Excel: File > Save As > CSV UTF-8)" if spreadsheet else ""),
            file=str(path),
            expected="one of "
            + ", ".join(sorted(READERS))
            + " (each may be compressed: .gz, .zip, .bz2, .xz)",
            got=suffix or inner_name(path),
        )
    if not path.is_file():
        raise InputError("export file not found", file=str(path))
    return kind


def read_export(path: str | Path) -> pd.DataFrame:
    """Read CSV / JSON Lines / Parquet (by extension, each maybe compressed) with every
    cell as text or missing. A CSV row shorter than the header is left out: the index holds
    each row's 0-based record number in the file (a plain range when none is)."""
    return read_export_rows(path)[0]


def read_export_rows(path: str | Path) -> tuple[pd.DataFrame, ShortRows | None]:
    """:func:`read_export`, and the CSV rows shorter than the header it left out (None for
    JSON and Parquet, which have no such rows)."""
    path = Path(path)
    kind = export_kind(path)
    source = plain_export(path)
    short = None
    try:
        if kind == "csv":
            dialect = csv_dialect(source)
            short = short_rows(source, dialect)  # pandas would pad them: skipped, as by pyarrow
            df = pd.read_csv(
                source,
                dtype=str,
                keep_default_na=False,
                encoding_errors="replace",
                **pandas_options(source, dialect),
            )
            df = _without_short(without_trailing(df, path), short, path)
        elif kind == "jsonl" and is_document(source):  # an array, or {"issues": [...]}
            df = document_records(source)
        elif kind == "jsonl":
            with quiet():
                df = flatten(json_objects(pd.read_json(source, **read_kwargs(source)), path))
        else:
            df = pd.read_parquet(source).reset_index(drop=True)  # an index pandas wrote is not a row number
    except InputError as exc:  # already names the file and what was expected
        raise renamed(exc, source) from None
    except (
        ValueError,
        TypeError,
        OSError,
        pd.errors.ParserError,
    ) as exc:  # TypeError: a JSON line not an object
        raise InputError(f"cannot read the export as {kind}{_SHAPE[kind]}: {exc}", file=str(path)) from None
    return df.astype(object).where(df.notna(), None), short


def _without_short(df: pd.DataFrame, short: ShortRows, path: Path) -> pd.DataFrame:
    """``df`` (pandas' reading, short rows padded) without the short rows pyarrow and
    Python's csv reader found; their record numbers stay in the index."""
    if not short.rows:
        return df
    if len(df) != short.records:  # pandas counted records otherwise: refuse rather than guess
        raise short.unnumbered(path)
    return df.drop(index=[r - 1 for r in short.rows])


def without_trailing(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` without the field after a trailing delimiter, which must be empty: a row with
    a value there has more fields than the header (an unquoted delimiter in a cell?). The
    index holds each row's 0-based record number, as both readers give it."""
    if TRAILING not in df.columns:
        return df
    at = first_filled(df[TRAILING].tolist())
    if at is not None:
        raise InputError(
            "row has more fields than the header",
            file=str(path),
            row=int(df.index[at]) + 1,
            expected=f"{len(df.columns) - 1} fields (the header's), or one more left empty by a trailing delimiter",
            got=df.iloc[at].tolist()[-1],
        )
    return df.drop(columns=[TRAILING])


def json_objects(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` if its lines were JSON objects (named columns); lines of arrays give numbered ones."""
    if any(not isinstance(c, str) for c in df.columns):
        raise InputError(
            "cannot read the export as jsonl",
            file=str(path),
            expected="one JSON object per line",
            got="lines that are JSON arrays or values",
        )
    return df


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def load_export(path: str | Path, mapping: Mapping) -> Dataset:
    """Read an export through ``mapping``; errors name file, row and column."""
    path = Path(path)
    notes = file_notes(plain_export(path), export_kind(path), mapping.columns())
    df, short = read_export_rows(path)
    if short is None or not short.rows:
        return dataset_from_frame(df, mapping, path, header_notes=notes)
    data = dataset_from_frame(
        df,
        mapping,
        path,
        row_numbers=(df.index + 1).tolist(),
        rows_read=short.records,
        header_notes=[*notes, short.note()],
    )
    data.counts["dropped"]["short_row"] = len(short.rows)
    return data


def check_columns(columns: list[str], mapping: Mapping, fname: str) -> None:
    """Every column the mapping names is in the export, or an ``InputError`` naming it."""
    for use, col in mapping.columns().items():
        if col not in columns:
            raise InputError(
                f"the mapping's {use} names a column the export lacks{_near(col, columns)}",
                file=fname,
                column=col,
                expected="one of " + ", ".join(map(repr, columns)),
                got=col,
            )


def _near(col: str, columns: list[str]) -> str:
    """A hint when the export has the name in another case or with other spaces around it
    (invisible in a list of names: 'Subject ' from a hand-edited header, 'subject')."""
    key = " ".join(str(col).split()).casefold()
    same = [c for c in columns if " ".join(str(c).split()).casefold() == key]
    return f" (did you mean {same[0]!r}? names must match exactly, case and spaces too)" if same else ""


def dataset_from_frame(
    df: pd.DataFrame,
    mapping: Mapping,
    path: Path,
    *,
    row_numbers: list[int] | None = None,
    rows_read: int | None = None,
    sha256: str | None = None,
    rare: dict[str, dict[str, int]] | None = None,
    header_notes: list[dict] | None = None,
) -> Dataset:
    """A :class:`Dataset` from export rows already read (every cell text, a value or None).

    The streamed reader (training/stream.py) passes a slice of a larger export: its
    ``row_numbers`` (1-based, in the whole file), the file's ``rows_read`` and the
    ``rare`` classes counted over the whole file, so the result matches ``load_export``
    on those rows.
    """
    fname = str(path)
    check_columns(list(df.columns), mapping, fname)
    numbers = row_numbers if row_numbers is not None else list(range(1, len(df) + 1))
    dropped: dict[str, int] = {}
    texts, rows, keep, subjects = [], [], [], []
    subj = df[mapping.subject].tolist() if mapping.subject else [None] * len(df)
    subj = [_text_value(v, mapping.subject, row, fname) for v, row in zip(subj, numbers)]
    body = [_text_value(v, mapping.body, row, fname) for v, row in zip(df[mapping.body].tolist(), numbers)]
    bodies, html_cells = _visible_bodies(body)
    for i, (s, b) in enumerate(zip(subj, bodies)):
        text = model_text(None if _blank(s) else str(s), None if _blank(b) else str(b))
        if not text.strip():
            if _blank_row(df, i, mapping):  # Excel's emptied rows (",,,"): no ticket at all
                dropped["blank_row"] = dropped.get("blank_row", 0) + 1
                continue
            if not mapping.drop_empty_text:
                raise InputError(
                    "row has no text (set drop_empty_text: true to drop such rows)",
                    file=fname,
                    row=numbers[i],
                    column=mapping.body,
                    expected="a non-empty subject or body",
                    got=b,
                )
            dropped["empty_text"] = dropped.get("empty_text", 0) + 1
            continue
        texts.append(text), rows.append(numbers[i]), keep.append(i)
        subjects.append(None if _blank(s) else normalise(str(s))[:200])
    sub = df.iloc[keep]
    metadata = {
        k: [None if _blank(v) else v for v in sub[col].tolist()] for k, col in mapping.metadata.items()
    }
    notes: list[dict] = list(header_notes or [])
    if html_cells:
        notes.append(
            {
                "kind": "html_body",
                "column": mapping.body,
                "rows": html_cells,
                "message": f"{html_cells} cells of {mapping.body!r} were HTML (Freshdesk, Zendesk, ServiceNow "
                "write rich text so): read as their visible text, as the service reads an HTML ticket",
            }
        )
    if "created_at" in metadata:
        metadata["created_at"], note = parse_times(
            metadata["created_at"], rows, fname, mapping.metadata["created_at"], mapping.date_order
        )
        notes += [note] if note else []
    labels = {
        h: _labels(sub[s.column].tolist(), s, rows, fname, mapping.strict) for h, s in mapping.labels.items()
    }
    counts = {"rows_read": rows_read if rows_read is not None else len(df), "rows_kept": len(texts)}
    counts["dropped"] = dropped
    counts.update(_apply_filters(labels, mapping, rare))
    columns = {h: spec.column for h, spec in mapping.labels.items()}
    notes += label_notes(labels, columns) + multi_value_notes(labels, columns)
    counts["warnings"] = notes + repeated_id_notes(metadata.get("id"), labels, mapping.metadata.get("id"))
    return Dataset(
        path=path,
        sha256=sha256 or file_sha256(path),
        texts=texts,
        labels=labels,
        metadata=metadata,
        source_rows=rows,
        counts=counts,
        subjects=subjects,
    )


# JSON exports nest: Zendesk's "tags" is a list, its "comments" a list of objects. Read as
# text they trained on a Python repr ("['network', 'vip']" became a class of its own).
def _one_value(value: Any, column: str, row: int, fname: str) -> Any:
    """A label cell's one value: a one-element list is its element; a longer list or an
    object is not a label (an InputError saying what to map instead)."""
    if not isinstance(value, (list, tuple, dict)):
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) <= 1
        and not any(isinstance(x, (list, dict)) for x in value)
    ):
        return value[0] if value else None
    raise InputError(
        "a label column must hold one value per row",
        file=fname,
        row=row,
        column=column,
        expected="a text or a number (map a column with one value, e.g. a group or a custom field's "
        "dotted name such as 'group.name')",
        got=value if len(str(value)) < 120 else str(value)[:120] + "...",
    )


def _text_value(value: Any, column: str | None, row: int, fname: str) -> Any:
    """A text cell as text: a list of texts (a thread) joined by blank lines; a list of
    objects is refused, naming their keys (a comment thread: map the description)."""
    if not isinstance(value, (list, tuple, dict)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        return "\n\n".join(value)
    keys = sorted(
        {
            k
            for x in (value if isinstance(value, (list, tuple)) else [value])
            if isinstance(x, dict)
            for k in x
        }
    )
    raise InputError(
        "a text column holds objects, not text",
        file=fname,
        row=row,
        column=column,
        expected="text: map the ticket's subject or description column (a list of objects, such as a "
        "comment thread, is not one text)",
        got=f"{type(value).__name__} of objects with keys {keys[:8]}",
    )


def _visible_bodies(values: list) -> tuple[list, int]:
    """Bodies as the models will see them at intake: an HTML cell (a help desk's rich-text
    description) as its visible text, as the store keeps an HTML ticket (triage.htmltext);
    trained on markup, a head learned "div", "nbsp" and "ltr" that no live ticket has.
    Returns the bodies and how many cells were HTML."""
    out, html = [], 0
    for value in values:
        if isinstance(value, str) and "<" in value and looks_like_html(value):
            value, html = html_to_text(value), html + 1
        out.append(value)
    return out, html


def _blank_row(df: pd.DataFrame, i: int, mapping: Mapping) -> bool:
    """Whether every column the mapping names is blank in row ``i`` (the mapped columns only,
    so both readers agree: the streamed one reads no other)."""
    return all(_blank(v) for v in df.iloc[i][list(dict.fromkeys(mapping.columns().values()))])


def label_columns(
    df: pd.DataFrame, mapping: Mapping, row_numbers: list[int], fname: str
) -> dict[str, list[str | None]]:
    """Every head's labels of some export rows, renamed and ``where``-filtered, before the
    ``min_class_count`` cut (which needs the whole file's counts: training/stream.py)."""
    labels = {
        h: _labels(df[s.column].tolist(), s, row_numbers, fname, mapping.strict)
        for h, s in mapping.labels.items()
    }
    _apply_filters(labels, mapping, known_rare={})
    return labels


def rare_classes(counts: dict[str, dict[str, int]], mapping: Mapping) -> dict[str, dict[str, int]]:
    """Per head with a ``min_class_count``: the classes below it, from whole-file ``counts``."""
    return {
        h: {c: n for c, n in counts.get(h, {}).items() if n < s.min_class_count}
        for h, s in mapping.labels.items()
        if s.min_class_count
    }


def _labels(
    values: list[Any], spec: LabelSpec, rows: list[int], fname: str, strict: bool
) -> list[str | None]:
    out: list[str | None] = []
    for v, row in zip(values, rows):
        v = _one_value(v, spec.column, row, fname)
        if _blank(v):
            out.append(None)
            continue
        code = _code(v)
        if spec.rename and code not in spec.rename:
            if strict:
                raise InputError(
                    "label code not in the rename table",
                    file=fname,
                    row=row,
                    column=spec.column,
                    expected="one of " + ", ".join(spec.rename),
                    got=v,
                )
            out.append(code)
        else:
            out.append(spec.rename.get(code, code))
    return out


def _apply_filters(
    labels: dict[str, list[str | None]], mapping: Mapping, known_rare: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """Per head: rows outside its ``where`` and rows of too-rare classes lose that label (counted).

    ``known_rare`` (head → class → count) gives the too-rare classes counted elsewhere (over a whole
    file read in slices); None counts them here."""
    original = {h: list(v) for h, v in labels.items()}
    filtered, rare = {}, {}
    for head, spec in mapping.labels.items():
        vals = labels[head]
        n_out = 0
        for other, allowed in spec.where.items():
            for i, v in enumerate(vals):
                if v is not None and original[other][i] not in allowed:
                    vals[i], n_out = None, n_out + 1
        filtered[head] = n_out
        if known_rare is not None and spec.min_class_count:
            small = dict(known_rare.get(head, {}))
            rare[head] = {"classes": small, "rows": sum(v in small for v in vals)}
            labels[head] = [None if v in small else v for v in vals]
        elif spec.min_class_count:
            counts = pd.Series([v for v in vals if v is not None], dtype=object).value_counts()
            small = {str(k): int(c) for k, c in counts.items() if c < spec.min_class_count}
            rare[head] = {"classes": small, "rows": sum(small.values())}
            labels[head] = [None if v in small else v for v in vals]
    labelled = {h: sum(v is not None for v in vals) for h, vals in labels.items()}
    missing = {h: sum(v is None for v in original[h]) for h in labels}
    return {"labelled": labelled, "missing_label": missing, "filtered_out": filtered, "rare_classes": rare}
