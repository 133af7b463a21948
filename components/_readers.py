"""File readers for ExampleGen: CSV, Parquet and JSON Lines → Arrow tables of jfx types.

Every reader returns a :class:`ReadResult`: a ``pyarrow.Table`` whose columns are of the
jfx types (Arrow ``int64``, ``float64``, ``string``, ``bool``, ``timestamp[us]``; ``null``
for a column with no value in this file, which :func:`unify_types` resolves across files)
and the number of bad rows skipped.

Types are inferred over the *whole* file, not its first block: a CSV column of ints with a
word on line 900,000 is a string column (pyarrow's table reader re-infers when a later
block disagrees); ints mixed with decimals are floats. Inference order, as pyarrow's:
int, bool, timestamp (ISO-8601 dates and date-times, with or without a zone offset;
zoned values are converted to UTC), float, string. ``forced`` types (from a Schema, or
the types unified across files) are converted instead of inferred; a value that cannot
be converted makes its row bad.

Bad rows (a CSV row with the wrong number of fields, a JSONL line that is not a JSON
object, a value that cannot be converted to a forced type) raise
:class:`~jfx.errors.DataValidationError` naming the file and the line (header = line 1)
with ``on_bad_rows="error"``, or are dropped and counted with ``"skip"``. Problems with a
whole file (empty, not UTF-8, duplicate column names, nested JSON values, an unreadable
Parquet file, a CSV quote that opens a value and never closes) always raise. CSV values
may hold line breaks when quoted; a quote that never closes would make its value hold the
rest of the file, and since nothing shows where its row was meant to end, ``"skip"`` cannot
drop just that row: the error names the line and character where the quote opened. A CSV
record (a row with its line break) may be up to :data:`CSV_MAX_RECORD_BYTES` (256 MiB)
long; a longer one is an error naming its line and the limit.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("a,b,c\\n1,x,2024-01-02\\n2,,2024-01-03T04:05:06Z\\n")
    >>> r = read_file(p, "csv")
    >>> column_types(r.table), r.table.num_rows, r.bad_rows
    ({'a': 'int', 'b': 'string', 'c': 'timestamp'}, 2, 0)
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from jfx import _storage as storage
from jfx.components import _csv_scan
from jfx.errors import DataValidationError, InvalidArgumentError

__all__ = [
    "CSV_MAX_RECORD_BYTES",
    "FORMATS",
    "FilePart",
    "JFX_TYPES",
    "ReadPlan",
    "ReadResult",
    "Restart",
    "STREAM_BLOCK_BYTES",
    "iter_blocks",
    "stream_block_bytes",
    "read_file",
    "column_types",
    "unify_types",
    "conform",
    "arrow_type",
    "format_of",
]

log = logging.getLogger(__name__)

#: jfx column type → Arrow type.
JFX_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
}

#: format → the file name endings it reads when no ``input_pattern`` is given.
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".csv.gz", ".csv.bz2", ".csv.zst"),
    "parquet": (".parquet", ".pq"),
    "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz"),
}

ON_BAD_ROWS = ("error", "skip")

#: The longest CSV record (a row with its line break) read, in bytes: 256 MiB. pyarrow parses
#: CSV in blocks that must each hold a whole record; a file with a record longer than the
#: 1 MiB first tried is read again with blocks sized to its longest record, up to this limit,
#: which bounds the memory a block takes. A longer record is an error naming its line.
CSV_MAX_RECORD_BYTES = 256 << 20
_CSV_BLOCK_SIZE = 1 << 20  # pyarrow's default: most files never need more
_MIB = 1 << 20

_BAD_ROW_HINT = 'fix the file, or pass on_bad_rows="skip" to drop such rows (they are counted in bad_rows_skipped)'
_UNCLOSED_QUOTE = (
    "a quoted value opens here and never closes: {text!r}. Read as one value it would swallow every line "
    'after it, so the file is refused (on_bad_rows="skip" too: nothing shows where that row ends). Close the '
    'quote, or write a quote that is part of a quoted value as two (""), e.g. "a ""quoted"" word"'
)
_NOT_UTF8_HINT = "jfx reads text files as UTF-8; convert it first, e.g. `iconv -f latin1 -t utf-8 old > new`"


@dataclass
class ReadResult:
    """One file read: its rows as Arrow (jfx types, or ``null`` for a column with no value)
    and how many bad rows were skipped (always 0 with ``on_bad_rows="error"``)."""

    table: pa.Table
    bad_rows: int = 0


def format_of(fmt: str) -> str:
    """Check a format name (``csv``, ``parquet``, ``jsonl``) and return it."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return fmt


def arrow_type(jfx_type: str) -> pa.DataType:
    try:
        return JFX_TYPES[jfx_type]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown column type {jfx_type!r}; expected one of {', '.join(JFX_TYPES)}"
        ) from None


def _jfx_type(t: pa.DataType) -> str | None:
    """The jfx type of a normalised Arrow type (``None`` for the null type)."""
    if pa.types.is_null(t):
        return None
    for name, at in JFX_TYPES.items():
        if t == at:
            return name
    raise AssertionError(f"not a normalised type: {t}")


def column_types(table: pa.Table) -> dict[str, str | None]:
    """Column → jfx type (``None`` where a column holds no value at all) of a table read here."""
    return {f.name: _jfx_type(f.type) for f in table.schema}


def unify_types(per_file: Sequence[tuple[str, Mapping[str, str | None]]], fmt: str) -> dict[str, str]:
    """The column types of a whole input: each column's narrowest type that holds every file's values.

    Args:
        per_file: ``(file name, {column: type or None})`` per file, in input order.
        fmt: the format; CSV and Parquet files must all have the same columns (in any
            order), JSON Lines files may each have a subset (missing values are null).

    Returns:
        Column → jfx type, columns in the order first seen. int with float gives float;
        any other mix gives string; a column with no value anywhere is a string column.

    Raises:
        DataValidationError: CSV or Parquet files with different columns.
    """
    order: dict[str, str | None] = {}
    first_name, first_cols = per_file[0][0], list(per_file[0][1])
    for name, types in per_file:
        if fmt != "jsonl" and set(types) != set(first_cols):
            missing = [c for c in first_cols if c not in types]
            extra = [c for c in types if c not in first_cols]
            raise DataValidationError(
                f"{name}: its columns differ from {first_name}'s"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; extra {', '.join(extra)}" if extra else "")
                + ". All input files must have the same columns (use input_pattern to pick files of one kind)."
            )
        for col, t in types.items():
            order[col] = _widen(order[col], t) if col in order else t
    return {c: (t or "string") for c, t in order.items()}


def _widen(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {"int", "float"}:
        return "float"
    return "string"


def conform(table: pa.Table, types: Mapping[str, str]) -> pa.Table:
    """Reorder ``table``'s columns to ``types``; add all-null columns missing from it; cast
    null-typed columns. Columns already of another type must have been read with ``forced``."""
    arrays = []
    for col, t in types.items():
        target = arrow_type(t)
        if col not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, target))
            continue
        arr = table.column(col)
        if arr.type != target:
            if not pa.types.is_null(arr.type):
                raise AssertionError(f"column {col} is {arr.type}, expected {target}")
            arr = pa.nulls(table.num_rows, target)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=pa.schema([(c, arrow_type(t)) for c, t in types.items()]))


def _row_namer(offset: int) -> Callable[[int], str]:
    """Names row ``i`` of a batch that starts after ``offset`` rows of the file (1-based)."""
    return lambda i: f"row {offset + i + 1}"


def read_file(
    path: str | Path,
    fmt: str,
    *,
    forced: Mapping[str, str] | None = None,
    on_bad_rows: str = "error",
    name: str | None = None,
) -> ReadResult:
    """Read one file into Arrow with jfx types.

    Args:
        path: the file (``.gz``/``.bz2``/``.zst`` CSV and JSONL are decompressed).
        fmt: ``"csv"``, ``"parquet"`` or ``"jsonl"``.
        forced: column → jfx type to convert to instead of inferring (columns not in the
            file are ignored). A value that cannot be converted makes its row bad.
        on_bad_rows: ``"error"`` (raise on the first bad row) or ``"skip"`` (drop, count).
        name: how to name the file in messages (default: the path).

    Returns:
        A :class:`ReadResult`.

    Raises:
        DataValidationError: a bad row with ``on_bad_rows="error"``, or a problem with the
            whole file (empty, not UTF-8, duplicate or empty column names, nested values,
            a CSV quote that never closes, unreadable).
    """
    format_of(fmt)
    if on_bad_rows not in ON_BAD_ROWS:
        raise InvalidArgumentError(f"on_bad_rows must be 'error' or 'skip'; got {on_bad_rows!r}")
    forced = {c: t for c, t in (forced or {}).items()}
    for t in forced.values():
        arrow_type(t)
    ctx = _Ctx(str(path) if storage.is_remote(str(path)) else Path(path), name or str(path), fmt,
               on_bad_rows == "skip")
    reader = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_jsonl}[fmt]
    table, bad = reader(ctx, forced)
    if bad:
        log.warning("%s: skipped %d bad row(s)", ctx.name, bad)
    return ReadResult(table, bad)


@dataclass
class _Ctx:
    path: Path | str  # a local path, or the URI of an object on a store (read as a stream)
    name: str
    fmt: str
    skip: bool
    part: FilePart | None = None

    def fail(self, message: str) -> DataValidationError:
        return DataValidationError(f"{self.name}: {message}")


# --------------------------------------------------------------------------- CSV


def _read_csv(ctx: _Ctx, forced: Mapping[str, str]) -> tuple[pa.Table, int]:
    import pyarrow.csv as pcsv

    # pyarrow reads a quote that never closes as a value holding the rest of the file.
    compressed = _csv_scan.streamed(ctx.path)  # compressed or remote: one forward stream
    if not compressed:
        open_at = _csv_scan.unclosed_quote(ctx.path)
        if open_at is not None:
            raise _unclosed_quote(ctx, open_at)
    bad: list[Any] = []
    block_size = _CSV_BLOCK_SIZE

    def on_invalid(row: Any) -> str:
        bad.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    def read(as_string: set[str], typed: Mapping[str, pa.DataType], use_threads: bool = True) -> pa.Table:
        bad.clear()
        types = {**typed, **{c: pa.string() for c in as_string}}
        options = {
            "read_options": pcsv.ReadOptions(use_threads=use_threads, block_size=block_size),
            "parse_options": pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            "convert_options": pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        }
        if not compressed:
            return pcsv.read_csv(ctx.path, **options)
        # A compressed file is checked for an open quote as pyarrow reads it: one decompression.
        with _csv_scan.CheckedStream(ctx.path) as stream:
            try:
                table = pcsv.read_csv(stream, **options)
            except pa.ArrowInvalid:
                if stream.open_quote() is None:
                    raise
            open_at = stream.open_quote()
        if open_at is not None:  # it explains whatever else pyarrow found (ragged rows, straddling)
            raise _unclosed_quote(ctx, open_at)
        return table

    # Targets pyarrow converts itself; timestamps are read as text and parsed here, so that
    # zoned and naive values, dates and nanosecond fractions all work.
    typed = {c: arrow_type(t) for c, t in forced.items() if t in ("int", "float", "bool")}
    as_string = {c for c, t in forced.items() if t in ("string", "timestamp")}
    for _ in range(1000):
        try:
            table = read(as_string, typed)
            break
        except pa.ArrowInvalid as err:
            msg = str(err)
            if "Empty CSV file" in msg:
                raise ctx.fail("the file is empty; expected a header line with the column names") from None
            if "UTF8" in msg or "UTF-8" in msg:
                raise _not_utf8(ctx) from None
            if "straddling object" in msg:  # a record longer than a block
                block_size = _csv_block_size(ctx, block_size, msg)
                continue
            m = re.search(r"In CSV column #(\d+)", msg)
            if m is None:
                raise ctx.fail(f"cannot parse the file as CSV: {msg}") from err
            header = _csv_header(ctx, block_size)
            col = header[int(m.group(1))]
            if col not in typed:
                raise ctx.fail(f"cannot parse the file as CSV: {msg}") from err
            # A value pyarrow cannot convert to a forced type: read the column as text and
            # find the offending rows ourselves.
            del typed[col]
            as_string.add(col)
    else:  # pragma: no cover - each retry removes one column from `typed`
        raise AssertionError("unreachable")
    _check_names(ctx, table.column_names)
    if bad and not ctx.skip:
        number = bad[0][0]
        if number is None:  # not known when the file was read by several threads
            read(as_string, typed, use_threads=False)
            number = bad[0][0]
        raise _bad_csv_row(ctx, number, *bad[0][1:])
    skipped = len(bad)

    columns: dict[str, pa.Array] = {}
    bad_mask = np.zeros(table.num_rows, dtype=bool)
    for col in table.column_names:
        arr = table.column(col).combine_chunks() if table.num_rows else pa.array([], table.column(col).type)
        if col in forced and col in as_string and forced[col] != "string":
            arr, rows = _convert(ctx, arr, col, forced[col])
            bad_mask[rows] = True
        else:
            arr = _normalise(ctx, arr, col, infer=col not in forced)
        columns[col] = arr
    return _assembled(table, columns, bad_mask, skipped)


def _assembled(table: pa.Table, columns: dict[str, pa.Array], bad_mask: np.ndarray,
               skipped: int) -> tuple[pa.Table, int]:
    """The converted ``columns`` as a table without the rows ``bad_mask`` marks, and the rows
    left out in all (``skipped`` before, plus those)."""
    table = pa.Table.from_pydict(columns) if columns else table
    table, dropped = _drop_bad(table, bad_mask)
    return table, skipped + dropped


def _unclosed_quote(ctx: _Ctx, offset: int) -> DataValidationError:
    line, column = _csv_scan.line_and_column(ctx.path, offset)
    text = re.split(r"[\r\n]", _csv_scan.text_at(ctx.path, offset, 200), maxsplit=1)[0]
    return ctx.fail(f"line {line}, character {column}: " + _UNCLOSED_QUOTE.format(text=_clip(text, 40)))


def _csv_block_size(ctx: _Ctx, current: int, msg: str) -> int:
    """The block size that holds the file's longest record, or an error past the limit."""
    longest, start = _csv_scan.longest_record(ctx.path)
    if longest > CSV_MAX_RECORD_BYTES:
        line, _ = _csv_scan.line_and_column(ctx.path, start)
        raise ctx.fail(
            f"line {line}: a record of {longest / _MIB:.1f} MiB; jfx reads CSV records of up to "
            f"{CSV_MAX_RECORD_BYTES / _MIB:g} MiB (a value that long belongs in a Parquet file, or in a "
            "file of its own that the CSV names)"
        )
    if current > 2 * CSV_MAX_RECORD_BYTES:  # pragma: no cover - blocks already hold every record
        raise ctx.fail(f"cannot parse the file as CSV: {msg}")
    # A quarter more than the record: where a block starts within it does not matter then.
    return min(max(2 * current, longest + longest // 4 + (1 << 16)), 2**31 - 1)


def _csv_header(ctx: _Ctx, block_size: int = _CSV_BLOCK_SIZE) -> list[str]:
    import pyarrow.csv as pcsv

    with pcsv.open_csv(storage.input_stream(ctx.path) if storage.is_remote(str(ctx.path)) else ctx.path,
                       read_options=pcsv.ReadOptions(block_size=block_size),
                       parse_options=pcsv.ParseOptions(newlines_in_values=True),
                       convert_options=pcsv.ConvertOptions(column_types={}, strings_can_be_null=True)
                       ) as reader:  # reads the first block only
        return reader.schema.names


def _csv_line(ctx: _Ctx, record: int | None) -> str:
    """The physical line (1-based, as an editor shows it) where CSV record ``record`` starts
    (header = record 1; blank lines are not records). Only used to word an error."""
    if record is None:
        return "?"
    if ctx.part is not None:  # numbered within the part, whose first record follows its header
        record += _csv_scan.records_before(ctx.path, ctx.part.start) - 1
    line = _csv_scan.record_line(ctx.path, record)
    return f"{record} (record)" if line is None else str(line)


def _check_names(ctx: _Ctx, names: list[str]) -> None:
    for i, n in enumerate(names):
        if not n.strip():
            raise ctx.fail(f"column {i + 1} has an empty name in the header line; every column needs a name")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ctx.fail(f"duplicate column name(s) in the header: {', '.join(dup)}")


# ----------------------------------------------------------------------- Parquet


def _read_parquet(ctx: _Ctx, forced: Mapping[str, str]) -> tuple[pa.Table, int]:
    import pyarrow.parquet as pq

    try:
        table = (storage.open_parquet(ctx.path).read() if storage.is_remote(str(ctx.path))
                 else pq.read_table(ctx.path))
    except (pa.ArrowException, OSError) as err:
        raise ctx.fail(f"cannot read the file as Parquet: {err}") from err
    _check_names(ctx, table.column_names)
    return _finish_typed(ctx, table, forced, lambda i: f"row {i + 1}")


def _finish_typed(ctx: _Ctx, table: pa.Table, forced: Mapping[str, str],
                  where: Callable[[int], str]) -> tuple[pa.Table, int]:
    """Normalise (or convert to ``forced``) the columns of a typed table; drop bad rows."""
    columns: dict[str, pa.Array] = {}
    bad_mask = np.zeros(table.num_rows, dtype=bool)
    for col in table.column_names:
        arr = table.column(col)
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
        arr = _normalise(ctx, arr, col, infer=col not in forced and ctx.fmt != "parquet")
        if col in forced and arr.type != arrow_type(forced[col]):
            arr, rows = _convert(ctx, arr, col, forced[col], where)
            bad_mask[rows] = True
        columns[col] = arr
    if columns:
        table = pa.Table.from_pydict(columns)
    return _drop_bad(table, bad_mask)


# ------------------------------------------------------------------- JSON Lines


def _read_jsonl(ctx: _Ctx, forced: Mapping[str, str]) -> tuple[pa.Table, int]:
    import pyarrow.json as pj

    try:
        source = storage.input_stream(ctx.path) if storage.is_remote(str(ctx.path)) else ctx.path
        table = pj.read_json(source, parse_options=pj.ParseOptions(unexpected_field_behavior="infer"))
        table.validate(full=True)  # pyarrow's JSON reader does not check UTF-8 itself
        skipped = 0
    except pa.ArrowInvalid as err:
        msg = str(err)
        if "Empty JSON file" in msg:
            raise ctx.fail("the file is empty; expected one JSON object per line") from None
        if "UTF8" in msg or "UTF-8" in msg or "utf8" in msg.lower():
            raise _not_utf8(ctx) from None
        # A line that is not a JSON object, or a field whose type changes: parse line by line.
        table, skipped = _jsonl_slow(ctx)
    for f in table.schema:
        if pa.types.is_struct(f.type) or pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            raise ctx.fail(
                f"column {f.name!r} holds nested values ({f.type}); Examples hold flat columns "
                "(int, float, string, bool, timestamp): flatten it first"
            )
    _check_names(ctx, table.column_names)
    table, dropped = _finish_typed(ctx, table, forced, lambda i: f"line {_jsonl_line(ctx, i)}")
    return table, skipped + dropped


def _jsonl_lines(ctx: _Ctx):
    with storage.input_stream(ctx.path) as raw:
        data = raw.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(ctx) from None
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def _jsonl_line(ctx: _Ctx, row: int) -> int:
    for i, (number, _) in enumerate(_jsonl_lines(ctx)):
        if i == row:
            return number
    return row + 1


def _jsonl_slow(ctx: _Ctx, lines: Any = None, text: frozenset[str] = frozenset()) -> tuple[pa.Table, int]:
    """Parse JSON Lines in Python: finds bad lines exactly, and types each field over the
    lines given (default: the whole file; a field holding numbers and text becomes a string
    column). ``text``: columns read as text whatever they hold (numbers as JSON writes them)."""
    rows: list[dict[str, Any]] = []
    skipped = 0
    for number, line in (_jsonl_lines(ctx) if lines is None else lines):
        try:
            value = json.loads(line)
            problem = None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"
        except json.JSONDecodeError as err:
            problem = f"not valid JSON ({err.msg})"
        if problem is not None:
            if not ctx.skip:
                raise ctx.fail(f"line {number}: {problem}: {_clip(line)!r}; {_BAD_ROW_HINT}")
            skipped += 1
            continue
        rows.append(value)
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    columns = {}
    for col in names:
        values = [r.get(col) for r in rows]
        kinds = {_json_kind(v) for v in values if v is not None}
        if "nested" in kinds:
            raise ctx.fail(
                f"column {col!r} holds nested values (objects or arrays); Examples hold flat columns "
                "(int, float, string, bool, timestamp): flatten it first"
            )
        if not kinds:
            columns[col] = pa.nulls(len(values))
        elif col in text:
            columns[col] = pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string()
            )
        elif kinds == {"int"}:
            columns[col] = pa.array(values, pa.int64())
        elif kinds <= {"int", "float"}:
            columns[col] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif kinds == {"bool"}:
            columns[col] = pa.array(values, pa.bool_())
        elif kinds == {"string"}:
            arr = pa.array(values, pa.string())
            try:
                columns[col] = _parse_timestamps(arr)
            except pa.ArrowInvalid:
                columns[col] = arr
        else:
            columns[col] = pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string()
            )
    return pa.Table.from_pydict(columns) if columns else pa.table({}), skipped


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "nested"


# ------------------------------------------------------------------ conversion


def _normalise(ctx: _Ctx, arr: pa.Array, col: str, infer: bool = True) -> pa.Array:
    """Map a reader's Arrow type onto the jfx types (or null); ``infer``: the column's type
    was inferred (not forced), so text that is all ISO-8601 becomes a timestamp column."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if t == pa.string() and infer:
        # Dates mixed with zoned date-times defeat pyarrow's inference; they are still timestamps.
        try:
            return _parse_timestamps(arr)
        except pa.ArrowInvalid:
            return arr
    if pa.types.is_null(t) or t in (pa.int64(), pa.float64(), pa.string(), pa.bool_(), pa.timestamp("us")):
        return arr
    if pa.types.is_integer(t):
        try:
            return pc.cast(arr, pa.int64())
        except pa.ArrowInvalid as err:
            raise ctx.fail(f"column {col!r}: {t} values out of the int64 range ({err})") from None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64(), safe=False)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if pa.types.is_timestamp(t) and t.tz is not None:
            arr = pc.cast(arr, pa.timestamp(t.unit, "UTC"))
            arr = pa.Array.from_buffers(pa.timestamp(t.unit), len(arr), arr.buffers(), offset=arr.offset)
        return pc.cast(arr, pa.timestamp("us"), safe=False)  # ns → us truncates
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        if ctx.fmt == "csv":
            raise _not_utf8(ctx)
        try:
            return pc.cast(arr, pa.string())
        except pa.ArrowInvalid:
            raise ctx.fail(f"column {col!r} holds bytes that are not UTF-8 text; Examples hold text as UTF-8") from None
    if pa.types.is_time(t):
        return pc.cast(arr, pa.string())
    raise ctx.fail(
        f"column {col!r} has type {t}, which Examples do not hold (int, float, string, bool, timestamp)"
    )


_ZONE_RE = r"[T ]\d\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$"


def _parse_timestamps(arr: pa.Array) -> pa.Array:
    """ISO-8601 text → timestamp[us]; zoned values converted to UTC. Raises ArrowInvalid."""
    first = _first_value(arr)
    if first is not None and not re.match(r"\d{4}-\d\d-\d\d", first):
        raise pa.ArrowInvalid("not an ISO-8601 timestamp")  # the cheap common case: plain text
    arr = pc.replace_substring_regex(arr, r"(\.\d{6})\d+", r"\1")  # ns fractions: truncate to us
    zoned = pc.fill_null(pc.match_substring_regex(arr, _ZONE_RE), False)
    if not pc.any(zoned).as_py():
        return pc.cast(arr, pa.timestamp("us"))
    null = pa.scalar(None, pa.string())
    naive = pc.cast(pc.if_else(zoned, null, arr), pa.timestamp("us"))
    utc = pc.cast(pc.if_else(zoned, arr, null), pa.timestamp("us", "UTC"))
    utc = pa.Array.from_buffers(pa.timestamp("us"), len(utc), utc.buffers(), offset=utc.offset)
    return pc.if_else(zoned, utc, naive)


def _first_value(arr: pa.Array) -> Any:
    """The first non-null value of ``arr`` (``None`` if there is none), without copying it."""
    if arr.null_count == len(arr):
        return None
    step = 1024
    for start in range(0, len(arr), step):
        part = pc.drop_null(arr.slice(start, step))
        if len(part):
            return part[0].as_py()
    return None


def _caster(source: pa.DataType, target: str) -> Callable[[pa.Array], pa.Array]:
    if target == "timestamp" and pa.types.is_string(source):
        return _parse_timestamps
    to = arrow_type(target)
    if target == "bool" and pa.types.is_string(source):
        def to_bool(a: pa.Array) -> pa.Array:  # the CSV reader's words for true and false
            low = pc.utf8_lower(a)
            ok = pc.is_in(low, pa.array(["1", "0", "true", "false"]))
            if not pc.all(pc.or_(ok, pc.is_null(a))).as_py():
                raise pa.ArrowInvalid("not a bool")
            return pc.cast(low, pa.bool_())
        return to_bool
    return lambda a: pc.cast(a, to)


def _convert(ctx: _Ctx, arr: pa.Array, col: str, target: str,
             where: Callable[[int], str] | None = None) -> tuple[pa.Array, np.ndarray]:
    """Convert ``arr`` to ``target``; the rows whose value cannot be converted are bad.

    Returns the converted array (null at bad rows) and the bad rows' indices. With
    ``on_bad_rows="error"`` the first bad row raises, naming its line.
    """
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), arrow_type(target)), np.zeros(0, dtype=np.int64)
    if pa.types.is_timestamp(arr.type) and target != "timestamp" and target != "string":
        raise ctx.fail(f"column {col!r} holds timestamps; the schema says {target}")
    fn = _caster(arr.type, target)
    try:
        return fn(arr), np.zeros(0, dtype=np.int64)
    except pa.ArrowNotImplementedError:
        raise ctx.fail(f"column {col!r} holds {arr.type} values; the schema says {target}") from None
    except pa.ArrowInvalid:
        pass
    bad: list[int] = []
    _locate_bad(arr, fn, 0, bad, first_only=not ctx.skip)
    if not ctx.skip:
        i = bad[0]
        loc = where(i) if where else f"line {_csv_line(ctx, i + 2)}"
        raise ctx.fail(
            f"{loc}, column {col!r}: cannot convert {_clip(str(arr[i].as_py()))!r} to {target}; {_BAD_ROW_HINT}"
        )
    rows = np.asarray(bad, dtype=np.int64)
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    cleaned = pc.if_else(pa.array(mask), pa.scalar(None, arr.type), arr)
    return fn(cleaned), rows


def _locate_bad(arr: pa.Array, fn: Callable[[pa.Array], pa.Array], start: int, out: list[int],
                first_only: bool) -> None:
    """Append to ``out`` the indices of values in ``arr`` (known to fail) that ``fn`` rejects.

    Bisects with vectorised casts, so a few bad values among millions cost a few dozen
    casts, not a Python loop over every value.
    """
    n = len(arr)
    if n <= 8:
        for i in range(n):
            try:
                fn(arr.slice(i, 1))
            except pa.ArrowInvalid:
                out.append(start + i)
                if first_only:
                    return
        return
    mid = n // 2
    for offset, part in ((0, arr.slice(0, mid)), (mid, arr.slice(mid))):
        try:
            fn(part)
        except pa.ArrowInvalid:
            _locate_bad(part, fn, start + offset, out, first_only)
            if first_only and out:
                return


def _drop_bad(table: pa.Table, bad_mask: np.ndarray) -> tuple[pa.Table, int]:
    n = int(bad_mask.sum())
    if n:
        table = table.filter(pa.array(~bad_mask))
    return table, n


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _not_utf8(ctx: _Ctx) -> DataValidationError:
    """Locate the first byte that is not UTF-8 and word the error with its line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1  # offset: bytes handed to the decoder before this chunk
    with storage.input_stream(ctx.path) as raw:
        while chunk := raw.read(1 << 20):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                # err.object is the decoder's pending bytes followed by this chunk.
                lines += err.object[: err.start].count(b"\n")
                return ctx.fail(
                    f"line {lines} (byte offset {offset - pending + err.start}) is not valid UTF-8 text; "
                    f"{_NOT_UTF8_HINT}"
                )
            lines += chunk.count(b"\n")
            offset += len(chunk)
    return ctx.fail(f"the file is not valid UTF-8 text; {_NOT_UTF8_HINT}")


# ------------------------------------------------------------------ streaming in blocks

#: Bytes of CSV text (or Parquet rows) read per block when streaming; ``JFX_READ_BLOCK_BYTES``
#: overrides it (tests force small blocks, so the multi-block paths run on small files).
STREAM_BLOCK_BYTES = 2 << 20  # larger blocks pile up in pyarrow's CSV read-ahead (measured)


def stream_block_bytes() -> int:
    import os

    value = os.environ.get("JFX_READ_BLOCK_BYTES")
    return max(int(value), 1 << 10) if value else STREAM_BLOCK_BYTES


@dataclass(frozen=True)
class FilePart:
    """Part of one input file, which a worker reads on its own: a local uncompressed CSV
    file's whole records in bytes ``[start, end)``, after its header (bytes up to
    ``header_end``; see :func:`~jfx.components._csv_scan.record_boundaries`), or a Parquet
    file's row groups ``[start, end)``."""

    start: int
    end: int
    header_end: int = 0


@dataclass(frozen=True)
class ReadPlan:
    """How one file is read in blocks; a :class:`Restart` carries a changed one.

    ``widened``: columns read as text and converted to the given type (``None``: inferred per
    block), because a later block did not fit the type the first block had. ``demoted``:
    columns of a forced type that pyarrow could not convert, read as text so that the rows
    whose value does not convert are found.
    """

    block_size: int
    widened: tuple[tuple[str, str | None], ...] = ()
    demoted: frozenset[str] = frozenset()
    grown: bool = False  # block_size was set to hold the file's longest CSV record

    def widen(self, column: str, jfx_type: str | None) -> ReadPlan:
        from dataclasses import replace

        w = dict(self.widened)
        w[column] = jfx_type
        return replace(self, widened=tuple(w.items()))


class Restart(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The file must be read again from its start with ``plan`` (what was read is void)."""

    def __init__(self, plan: ReadPlan) -> None:
        super().__init__("read again")
        self.plan = plan


def iter_blocks(
    path: str | Path,
    fmt: str,
    *,
    forced: Mapping[str, str] | None = None,
    on_bad_rows: str = "error",
    name: str | None = None,
    plan: ReadPlan | None = None,
    part: FilePart | None = None,
) -> Any:
    """Read one file as a sequence of blocks of bounded size: :func:`read_file`'s tables, in pieces.

    Each block is a :class:`ReadResult` whose columns have the type that block's values
    infer (or the forced type; ``null`` where the block has no value), so blocks of one file
    may disagree: the caller checks and raises :class:`Restart` with a plan that widens the
    column, as this generator does when pyarrow meets a value that does not fit the type it
    inferred from the first block. Bad rows and whole-file problems raise as in
    :func:`read_file`, naming the file and line. JSON Lines blocks are whole lines; a field
    first met in a later block is widened like a type (every block then has the column).
    ``part``: read only that :class:`FilePart` of the file (errors still name the line or
    row in the whole file).
    """
    format_of(fmt)
    forced = dict(forced or {})
    plan = plan or ReadPlan(stream_block_bytes())
    if part is not None and (fmt == "jsonl" or (fmt == "csv" and _csv_scan.streamed(path))):
        raise InvalidArgumentError(f"{path}: only a local uncompressed CSV file or a Parquet file is read in parts")
    ctx = _Ctx(str(path) if storage.is_remote(str(path)) else Path(path), name or str(path), fmt,
               on_bad_rows == "skip", part)
    if fmt == "csv":
        yield from _stream_csv(ctx, forced, plan)
    elif fmt == "parquet":
        yield from _stream_parquet(ctx, forced, plan)
    else:
        yield from _stream_jsonl(ctx, forced, plan)


def _infer_text(arr: pa.Array) -> pa.Array:
    """Text read as-is → the narrowest jfx type all its values parse as (CSV inference's order)."""
    if arr.null_count == len(arr):
        return pa.nulls(len(arr))
    for target in ("int", "bool", "timestamp", "float"):
        try:
            return _caster(arr.type, target)(arr)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return arr


def _fit_widened(arr: pa.Array, target: str | None) -> pa.Array | None:
    """A text column's block as ``target`` (``None``: as inferred), or ``None`` if it does not fit."""
    inferred = _infer_text(arr)
    got = _jfx_type(inferred.type)
    if target is None:
        return inferred
    if got is None:
        return pa.nulls(len(arr), arrow_type(target))
    if got == target:
        return inferred
    if _widen(target, got) != target:
        return None
    if target == "string":
        return arr
    return pc.cast(inferred, arrow_type(target))  # int → float


class _Prefetch:
    """Calls ``read_next`` on a thread of its own, up to ``depth`` results ahead of
    :meth:`next`: pyarrow's streaming CSV reader parses on the thread that asks for a batch
    (one core) and lets go of the GIL meanwhile, so the next block is parsed while the caller
    converts, hashes and writes the last one. Memory holds at most ``depth + 1`` blocks."""

    def __init__(self, read_next: Callable[[], Any], depth: int = 2) -> None:
        import queue
        import threading

        self._queue: Any = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(read_next,), name="jfx-csv-read", daemon=True)
        self._thread.start()

    def _run(self, read_next: Callable[[], Any]) -> None:
        import queue

        while not self._stop.is_set():
            try:
                item: tuple[str, Any] = ("batch", read_next())
            except StopIteration:
                item = ("end", None)
            except BaseException as err:  # noqa: BLE001 - handed to the caller, raised there
                item = ("error", err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if item[0] != "batch":
                return

    def next(self) -> Any:
        """The next result; raises what ``read_next`` raised (``StopIteration`` at the end)."""
        kind, value = self._queue.get()
        if kind == "end":
            self._stop.set()
            raise StopIteration
        if kind == "error":
            self._stop.set()
            raise value
        return value

    def close(self) -> None:
        """Stop reading ahead; returns once the thread has left ``read_next``."""
        self._stop.set()
        self._thread.join()


def _first_block_types(ctx: _Ctx, block_size: int, skip: set[str]) -> dict[str, pa.DataType]:
    """The types pyarrow infers from the file's first block, for the columns not in ``skip``
    and with a value there (``{}`` when that block does not read).

    pyarrow's streaming reader infers each column's type from the first block and keeps it,
    but converts every later block through its inferring decoder, which costs about a
    third more than converting to a type it is given; so the first block is read twice
    and the stream is given these types. A later value that does not fit fails the same
    way (a conversion error naming the column) and the column is widened as before.
    """
    import pyarrow.csv as pcsv

    try:
        with pcsv.open_csv(storage.input_stream(ctx.path) if storage.is_remote(str(ctx.path)) else ctx.path,
                           read_options=pcsv.ReadOptions(block_size=block_size, use_threads=False),
                           parse_options=pcsv.ParseOptions(newlines_in_values=True,
                                                           invalid_row_handler=lambda row: "skip"),
                           convert_options=pcsv.ConvertOptions(strings_can_be_null=True)) as reader:
            schema = reader.schema
    except (pa.ArrowException, OSError):  # the stream itself meets it again and words it
        return {}
    if len(set(schema.names)) != len(schema.names):
        return {}
    return {f.name: f.type for f in schema if f.name not in skip and not pa.types.is_null(f.type)}


def _stream_csv(ctx: _Ctx, forced: Mapping[str, str], plan: ReadPlan) -> Any:
    import pyarrow.csv as pcsv

    compressed = _csv_scan.streamed(ctx.path)
    if not compressed:
        open_at = _csv_scan.unclosed_quote(ctx.path)
        if open_at is not None:
            raise _unclosed_quote(ctx, open_at)
    widened = dict(plan.widened)
    typed = {c: arrow_type(t) for c, t in forced.items()
             if t in ("int", "float", "bool") and c not in plan.demoted and c not in widened}
    as_string = {c for c, t in forced.items() if t in ("string", "timestamp") or c in plan.demoted} | set(widened)
    bad: list[Any] = []
    # Blocks hold whole records: a record over half the limit straddles one and is measured.
    block_size = plan.block_size if plan.grown else min(plan.block_size, CSV_MAX_RECORD_BYTES // 2)

    def on_invalid(row: Any) -> str:
        bad.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    options = {
        # One thread: pyarrow numbers a bad row only then, and the stream parses a block on
        # the thread that asks for it either way (the next block is read ahead by _Prefetch).
        "read_options": pcsv.ReadOptions(use_threads=False, block_size=block_size),
        "parse_options": pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        "convert_options": pcsv.ConvertOptions(
            column_types={**_first_block_types(ctx, block_size, skip=set(typed) | as_string),
                          **typed, **{c: pa.string() for c in as_string}},
            strings_can_be_null=True),
    }
    stream = _csv_scan.CheckedStream(ctx.path) if compressed else None
    reader = None
    ahead: _Prefetch | None = None

    def fail(err: pa.ArrowInvalid) -> Exception:
        msg = str(err)
        if stream is not None and (open_at := stream.open_quote()) is not None:
            return _unclosed_quote(ctx, open_at)
        if "Empty CSV file" in msg:
            return ctx.fail("the file is empty; expected a header line with the column names")
        if "UTF8" in msg or "UTF-8" in msg:
            return _not_utf8(ctx)
        if "straddling object" in msg:  # a record longer than a block
            from dataclasses import replace

            return Restart(replace(plan, block_size=_csv_block_size(ctx, block_size, msg), grown=True))
        m = re.search(r"In CSV column #(\d+)", msg)
        if m is None:
            return ctx.fail(f"cannot parse the file as CSV: {msg}")
        names = reader.schema.names if reader is not None else _csv_header(ctx, block_size)
        col = names[int(m.group(1))]
        if col in typed:  # a forced type: find the values that do not convert ourselves
            from dataclasses import replace

            return Restart(replace(plan, demoted=plan.demoted | {col}))
        if reader is None:  # pragma: no cover - the first block's values infer its types
            return ctx.fail(f"cannot parse the file as CSV: {msg}")
        # A value that does not fit the type pyarrow inferred from the first block.
        # Read it as text from now on, its type inferred per block; the caller widens it.
        return Restart(plan.widen(col, None))

    source: Any = stream if stream is not None else ctx.path
    if ctx.part is not None:
        source = _csv_scan.PartStream(ctx.path, ctx.part.header_end, ctx.part.start, ctx.part.end)
    try:
        try:
            reader = pcsv.open_csv(source, **options)
        except pa.ArrowInvalid as err:
            raise fail(err) from None
        _check_names(ctx, reader.schema.names)
        records = 1  # the header; records (rows read or skipped) before the current block
        any_block = False
        ahead = _Prefetch(reader.read_next_batch)
        while True:
            try:
                batch = ahead.next()
            except StopIteration:
                break
            except pa.ArrowInvalid as err:
                raise fail(err) from None
            if bad and not ctx.skip:
                raise _bad_csv_row(ctx, *bad[0])
            skipped = len(bad)  # the reader's thread may add rows of the next block meanwhile
            del bad[:skipped]
            base = records + skipped  # approximately: bad rows are counted as they are met
            records += batch.num_rows + skipped
            yield ReadResult(*_finish_csv_block(ctx, pa.Table.from_batches([batch]), forced, as_string,
                                                widened, plan, base, skipped))
            any_block = True
        if stream is not None and (open_at := stream.open_quote()) is not None:
            raise _unclosed_quote(ctx, open_at)
        if bad and not ctx.skip:  # met after the last block was read
            raise _bad_csv_row(ctx, *bad[0])
        if bad or not any_block:  # an empty block (no types) carries what is left
            yield ReadResult(pa.table({n: pa.nulls(0) for n in reader.schema.names}), len(bad))
    finally:
        if ahead is not None:
            ahead.close()
        if reader is not None:
            reader.close()
        if source is not ctx.path:
            source.close()


def _bad_csv_row(ctx: _Ctx, number: int | None, expected: int, actual: int, text: str) -> DataValidationError:
    return ctx.fail(f"line {_csv_line(ctx, number)}: expected {expected} fields, got {actual}: "
                    f"{_clip(text)!r}; {_BAD_ROW_HINT}")


def _finish_csv_block(ctx: _Ctx, table: pa.Table, forced: Mapping[str, str], as_string: set[str],
                      widened: Mapping[str, str | None], plan: ReadPlan, base: int,
                      skipped: int) -> tuple[pa.Table, int]:
    columns: dict[str, pa.Array] = {}
    bad_mask = np.zeros(table.num_rows, dtype=bool)
    for col in table.column_names:
        arr = table.column(col).combine_chunks() if table.num_rows else pa.array([], table.column(col).type)
        if col in widened:
            fitted = _fit_widened(arr, widened[col])
            if fitted is None:
                raise Restart(plan.widen(col, _widen(widened[col], _jfx_type(_infer_text(arr).type))))
            arr = fitted
        elif col in forced and col in as_string and forced[col] != "string":
            arr, rows = _convert(ctx, arr, col, forced[col], lambda i: f"line {_csv_line(ctx, base + i + 1)}")
            bad_mask[rows] = True
        else:
            arr = _normalise(ctx, arr, col, infer=col not in forced)
        columns[col] = arr
    return _assembled(table, columns, bad_mask, skipped)


def _jsonl_chunks(ctx: _Ctx, block_size: int) -> Any:
    """``(line number of its first line, bytes)`` of whole lines, about ``block_size`` bytes
    each (more where one line is longer). A line break byte never occurs inside a UTF-8
    character, so cutting at one keeps every character whole."""
    line = 1
    pieces: list[bytes] = []  # the start of a line not yet ended
    with storage.input_stream(ctx.path) as raw:
        while chunk := raw.read(block_size):
            cut = chunk.rfind(b"\n")
            if cut < 0:
                pieces.append(chunk)
                continue
            data = b"".join([*pieces, chunk[: cut + 1]]) if pieces else chunk[: cut + 1]
            pieces = [chunk[cut + 1:]] if cut + 1 < len(chunk) else []
            yield line, data
            line += data.count(b"\n")
    if pieces:
        yield line, b"".join(pieces)


def _block_lines(data: bytes, first: int) -> Any:
    """The non-blank lines of a block of JSON Lines, with their line numbers."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return [(first + i, line) for i, line in enumerate(text.split("\n")) if line.strip()]


def _stream_jsonl(ctx: _Ctx, forced: Mapping[str, str], plan: ReadPlan) -> Any:
    import pyarrow.json as pj

    widened = dict(plan.widened)
    text = frozenset(c for c, t in widened.items() if t == "string")
    targets = {**forced, **{c: t for c, t in widened.items() if t is not None and c not in text}}
    targets.update({c: "string" for c in text})
    any_bytes = False
    for first, data in _jsonl_chunks(ctx, plan.block_size):
        any_bytes = True
        lines: Any = None
        table = None
        skipped = 0
        try:
            table = pj.read_json(pa.BufferReader(data),
                                 read_options=pj.ReadOptions(use_threads=False,
                                                             block_size=max(len(data) + 1, 1 << 20)),
                                 parse_options=pj.ParseOptions(unexpected_field_behavior="infer"))
            table.validate(full=True)  # pyarrow's JSON reader does not check UTF-8 itself
        except pa.ArrowInvalid as err:
            msg = str(err)
            if "UTF8" in msg or "UTF-8" in msg or "utf8" in msg.lower():
                raise _not_utf8(ctx) from None
            table = None  # a line that is not a JSON object, or a field whose type changes
        if table is not None and any(c in table.column_names and table.schema.field(c).type != pa.string()
                                     for c in text):
            table = None  # a text column holding numbers here: written as JSON writes them
        if table is None:
            lines = _block_lines(data, first)
            if lines is None:
                raise _not_utf8(ctx)
            table, skipped = _jsonl_slow(ctx, lines, text)
        for f in table.schema:
            if pa.types.is_struct(f.type) or pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
                raise ctx.fail(
                    f"column {f.name!r} holds nested values ({f.type}); Examples hold flat columns "
                    "(int, float, string, bool, timestamp): flatten it first"
                )
        _check_names(ctx, table.column_names)

        def where(i: int, data: bytes = data, first: int = first) -> str:
            found = _block_lines(data, first) or []
            return f"line {found[i][0] if i < len(found) else first + i}"

        table, dropped = _finish_typed(ctx, table, {c: t for c, t in targets.items() if c in table.column_names},
                                       where)
        for col, t in widened.items():  # a field first met in a later block: in every block
            if col not in table.column_names:
                table = table.append_column(col, pa.nulls(table.num_rows, arrow_type(t) if t else pa.null()))
        if skipped + dropped:
            log.warning("%s: skipped %d bad row(s)", ctx.name, skipped + dropped)
        yield ReadResult(table, skipped + dropped)
    if not any_bytes:
        raise ctx.fail("the file is empty; expected one JSON object per line")


def _stream_parquet(ctx: _Ctx, forced: Mapping[str, str], plan: ReadPlan) -> Any:
    import pyarrow.parquet as pq

    try:
        pf = storage.open_parquet(ctx.path) if storage.is_remote(str(ctx.path)) else pq.ParquetFile(ctx.path)
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as err:
        raise ctx.fail(f"cannot read the file as Parquet: {err}") from err
    _check_names(ctx, names)
    batch_rows = max(1024, plan.block_size // (16 * max(1, len(names))))
    groups = range(pf.metadata.num_row_groups) if ctx.part is None else range(ctx.part.start, ctx.part.end)
    done = sum(pf.metadata.row_group(g).num_rows for g in range(groups.start))  # rows before the part
    any_block = False
    try:
        for batch in storage.iter_parquet_batches(pf, batch_rows, row_groups=groups):
            table, bad = _finish_typed(ctx, pa.Table.from_batches([batch]), forced, _row_namer(done))
            done += batch.num_rows
            any_block = True
            yield ReadResult(table, bad)
    except (pa.ArrowException, OSError) as err:
        raise ctx.fail(f"cannot read the file as Parquet: {err}") from err
    if not any_block:
        table, bad = _finish_typed(ctx, pf.schema_arrow.empty_table(), forced, lambda i: f"row {i + 1}")
        yield ReadResult(table, bad)
