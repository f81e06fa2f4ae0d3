"""Exports read as a stream: a bounded number of rows in memory, whatever the file's size.

``load_export`` (training/mapping.py) reads the whole export into pandas: fine for 50 k
tickets, ~10 GB of Python strings for 10 M. Here the same export is read in slices:
Parquet through a pyarrow dataset (row groups one at a time), CSV through pyarrow's
streaming CSV reader (2 MB blocks, only the mapped columns kept), JSON Lines through
pandas' chunked reader; every slice goes through the same mapping code, so a row means the
same thing on both paths (tests/test_stream.py checks it).

Two readers build on the slices:

* :func:`scan` yields each slice as a :class:`~training.mapping.Dataset` (texts, labels
  per head, 1-based row numbers in the whole file): what the incremental candidate
  (training/incremental.py) learns from, one slice at a time;
* :func:`load_sampled` makes two passes: the first reads only the label columns and
  counts classes (and the whole-file ``min_class_count`` cut), the second keeps the rows
  of a stratified sample (training/sampling.py) and nothing else. Memory is the sample
  plus one small integer per row of the file.
"""

from __future__ import annotations

import logging
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from triage.bundle import file_sha256
from triage.errors import InputError

from .compressed import plain_export, renamed
from .csv_dialect import TRAILING, CsvDialect, arrow_names, csv_dialect
from .export_notes import file_notes
from .json_export import document_records, flatten, is_document, quiet, read_kwargs
from .mapping import (
    _SHAPE,
    json_objects,
    export_kind,
    Dataset,
    Mapping,
    check_columns,
    dataset_from_frame,
    label_columns,
    rare_classes,
    without_trailing,
)
from .short_rows import ShortRows, arrow_parse_options, short_rows

log = logging.getLogger(__name__)

BATCH_ROWS = 20_000
JSONL_HEAD_ROWS = 1_000


# ---------------------------------------------------------------------------- raw slices
def export_columns(path: str | Path) -> list[str]:
    """The export's column names, read from its header or schema only."""
    path = Path(path)
    kind = export_kind(path)
    source = plain_export(path)  # a compressed export's unpacked copy
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(source).names)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"cannot read the export as parquet: {exc}", file=str(path)) from None
    if kind == "csv":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        dialect = csv_dialect(source)
        short: list = []
        try:
            with pacsv.open_csv(
                source,
                read_options=_read_options(source, dialect, 1 << 16),
                parse_options=arrow_parse_options(dialect, short),
            ) as reader:
                return [n for n in reader.schema.names if n != TRAILING]
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise InputError(f"cannot read the export's header as csv: {exc}", file=str(path)) from None
    try:  # JSON Lines records may omit keys: the columns any of the first records has
        with closing(_jsonl_chunks(source, JSONL_HEAD_ROWS)) as chunks:  # the file closed at once
            first = next(chunks, None)
    except InputError as exc:
        raise renamed(exc, source) from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot read the export as jsonl{_SHAPE['jsonl']}: {exc}", file=str(path)) from None
    return [] if first is None else list(first.columns)


def _jsonl_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    if is_document(path):  # one JSON document: read whole (it cannot be read in parts), then sliced
        records = document_records(path)
        for start in range(0, len(records), rows):
            yield records.iloc[start : start + rows]
        return
    with pd.read_json(path, chunksize=rows, **read_kwargs(path)) as reader:
        while True:
            with quiet():
                chunk = next(reader, None)
            if chunk is None:
                return
            yield flatten(json_objects(chunk, path))


def frames(path: str | Path, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The export's ``columns`` in slices of about ``batch_rows`` rows, cells as ``read_export``
    gives them (text or a value, missing → None; CSV cells always text, empty stays ""), and
    as its index each row's 0-based record number (CSV rows shorter than the header skipped)."""
    path = Path(path)
    kind = export_kind(path)
    source = plain_export(path)  # a compressed export's unpacked copy
    try:
        if kind == "jsonl":
            row = 0
            for chunk in _jsonl_chunks(source, batch_rows):
                chunk = _cells(chunk.reindex(columns=columns))
                chunk.index = pd.RangeIndex(row, row + len(chunk))
                yield chunk
                row += len(chunk)
            return
        short = skipped_rows(path) or ShortRows(records=0, expected=0)
        row = 0
        for batch in _arrow_batches(source, kind, columns, batch_rows):
            numbers = short.record_numbers(row, batch.num_rows)
            df = _cells(batch.to_pandas())
            df.index = pd.Index(numbers - 1)
            yield without_trailing(df, path)
            row += batch.num_rows
    except InputError as exc:
        raise renamed(exc, source) from None
    except (ValueError, TypeError, OSError) as exc:  # TypeError: a JSON line not an object
        raise InputError(f"cannot read the export as {kind}{_SHAPE[kind]}: {exc}", file=str(path)) from None


# CSV blocks parsed at once: with 8 MB blocks and the scanner's read-ahead, reading one
# column of a 150 MB export peaked at +240 MB; 2 MB blocks read one after the other, +100 MB
CSV_BLOCK = 2 << 20


def _arrow_batches(path: Path, kind: str, columns: list[str], batch_rows: int):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as pads

    if kind == "parquet":  # row groups one at a time (the read-ahead holds several otherwise)
        dataset = pads.dataset(str(path), format="parquet")
        yield from dataset.to_batches(
            columns=columns, batch_size=batch_rows, batch_readahead=1, fragment_readahead=1
        )
        return
    names = export_columns(path)
    dialect = csv_dialect(path)
    # every CSV cell as text, as pandas' dtype=str, keep_default_na=False reads it: an empty
    # cell is "", never null, and "NA" is the text NA; quoted newlines are kept inside a cell
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in [*names, TRAILING]},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
        include_columns=columns + ([TRAILING] if dialect.trailing_field else []),
    )
    with pacsv.open_csv(
        path,
        read_options=_read_options(path, dialect, CSV_BLOCK),
        parse_options=arrow_parse_options(dialect, []),
        convert_options=convert,
    ) as reader:
        yield from reader


def skipped_rows(path: str | Path) -> ShortRows | None:
    """A CSV export's rows shorter than the header, which the readers skip (None for JSON and
    Parquet); an ``InputError`` when they are too many to skip (training/short_rows.py)."""
    path = Path(path)
    if export_kind(path) != "csv":
        return None
    source = plain_export(path)
    try:
        return short_rows(source, csv_dialect(source))
    except InputError as exc:
        raise renamed(exc, source) from None


def _read_options(path: Path, dialect: CsvDialect, block_size: int):
    import pyarrow.csv as pacsv

    names, skip = arrow_names(path, dialect)
    return pacsv.ReadOptions(
        block_size=block_size, encoding=_arrow_encoding(dialect), column_names=names, skip_rows=skip
    )


def _arrow_encoding(dialect: CsvDialect) -> str:
    """pyarrow decodes UTF-8 (and skips its byte-order mark) natively; any other encoding it
    transcodes through Python's codec of that name, more slowly."""
    return "utf8" if dialect.encoding in ("utf-8", "utf-8-sig") else dialect.encoding


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    df = df.astype(object)
    return df.where(df.notna(), None)


# ---------------------------------------------------------------------------- mapped slices
@dataclass
class Census:
    """What a first pass over the label columns learns: rows, class counts, the stratum per row."""

    rows: int
    counts: dict[str, dict[str, int]]
    rare: dict[str, dict[str, int]]
    strata: np.ndarray  # per file row: a small integer code of the first head's label (-1: none)
    strata_names: list[str] = field(default_factory=list)

    def stratum_labels(self) -> list[str | None]:
        """Per file row, the first head's label (or None): what :func:`stratified_rows` reads."""
        names = np.asarray(self.strata_names + [None], dtype=object)
        return names[self.strata].tolist()


def census(path: str | Path, mapping: Mapping, head: str | None, batch_rows: int = BATCH_ROWS) -> Census:
    """One pass over the label columns only: class counts per head (after renames and
    ``where`` filters) and ``head``'s label code per row."""
    path = Path(path)
    fname = str(path)
    check_columns(export_columns(path), mapping, fname)
    columns = list(dict.fromkeys(s.column for s in mapping.labels.values()))
    counts: dict[str, dict[str, int]] = {h: {} for h in mapping.labels}
    codes: dict[str, int] = {}
    strata: list[np.ndarray] = []
    start = 0
    for df in frames(path, columns, batch_rows):
        numbers = (df.index + 1).tolist()
        labels = label_columns(df, mapping, numbers, fname)
        for h, vals in labels.items():
            for v, n in pd.Series([v for v in vals if v is not None], dtype=object).value_counts().items():
                counts[h][str(v)] = counts[h].get(str(v), 0) + int(n)
        if head is not None:
            strata.append(
                np.asarray(
                    [-1 if v is None else codes.setdefault(v, len(codes)) for v in labels[head]],
                    dtype=np.int32,
                )
            )
        start += len(df)
    codes_arr = np.concatenate(strata) if strata else np.zeros(0, dtype=np.int32)
    return Census(start, counts, rare_classes(counts, mapping), codes_arr, list(codes))


def scan(
    path: str | Path,
    mapping: Mapping,
    *,
    rare: dict[str, dict[str, int]] | None = None,
    batch_rows: int = BATCH_ROWS,
    sha256: str = "",
) -> Iterator[Dataset]:
    """The export through ``mapping``, one :class:`Dataset` per slice (rows numbered in the file).

    ``rare`` is the whole file's too-rare classes (:func:`census`); without it no
    ``min_class_count`` cut is made, since a slice cannot count a class.
    """
    path = Path(path)
    columns = list(dict.fromkeys(mapping.columns().values()))
    for df in frames(path, columns, batch_rows):
        numbers = (df.index + 1).tolist()
        yield dataset_from_frame(
            df, mapping, path, row_numbers=numbers, rare=dict(rare or {}), sha256=sha256 or "-"
        )


def load_sampled(
    path: str | Path,
    mapping: Mapping,
    max_rows: int,
    head: str,
    *,
    seed: int = 0,
    batch_rows: int = BATCH_ROWS,
    known: Census | None = None,
) -> tuple[Dataset, Census]:
    """A stratified sample of at most ``max_rows`` rows, read in two passes (module docstring).

    Same rows as ``sample_dataset(load_export(...))`` up to rows without text, which
    are dropped after the draw here (before it there): a sample may come out a few rows short.
    """
    from .sampling import stratified_rows

    path = Path(path)
    info = known or census(path, mapping, head, batch_rows)
    keep = stratified_rows(info.stratum_labels(), max_rows, seed=seed)
    sha = file_sha256(path)
    parts: list[pd.DataFrame] = []
    numbers: list[int] = []
    columns = list(dict.fromkeys(mapping.columns().values()))
    start = 0
    for df in frames(path, columns, batch_rows):
        lo, hi = np.searchsorted(keep, [start, start + len(df)])
        local = keep[lo:hi] - start
        if len(local):
            parts.append(df.iloc[local])
            numbers.extend((df.index[local] + 1).tolist())
        start += len(df)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    short = skipped_rows(path)
    skipped = len(short.rows) if short else 0
    notes = file_notes(plain_export(path), export_kind(path), mapping.columns())
    data = dataset_from_frame(
        frame,
        mapping,
        path,
        row_numbers=numbers,
        rows_read=info.rows + skipped,
        sha256=sha,
        rare=dict(info.rare),
        header_notes=[*notes, short.note()] if short and skipped else notes,
    )
    if skipped:
        data.counts["dropped"]["short_row"] = skipped
    if len(keep) < info.rows:
        data.counts["sampled"] = {
            "max_rows": max_rows,
            "by": head,
            "seed": seed,
            "rows_before": info.rows,
            "rows_after": len(data),
            "read": "streamed",
        }
    return data, info
