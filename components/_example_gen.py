"""ExampleGen: read CSV, Parquet or JSON Lines files into an ``Examples`` artifact.

The output is the layout of docs/artifacts.md: ``<uri>/Split-<name>/part-NNNNN.parquet``
(one shard per input file that has rows in the split; NNNNN is the file's index in the
sorted input) with properties ``splits``, ``row_counts``, ``columns``, ``format``,
``input_fingerprint``, ``span``, ``version`` and ``bad_rows_skipped``.

Rows go to splits by a hash: of the ``split_key`` column's value if given, else of the
whole row (every column's parsed value, columns taken in name order). The hash is
computed column-wise with NumPy from the values alone, so a row lands in the same split
whatever file it is in, wherever in the file, on any engine, in any process; identical
rows always share a split. ``splits`` weights say what share of the hash space each
split gets (``{"train": 2, "eval": 1}``: about 2/3 train).

Example:
    >>> from jfx import Pipeline
    >>> from jfx.components._example_gen import ExampleGen
    >>> gen = ExampleGen(input_base="data/", splits={"train": 8, "eval": 1, "test": 1})
    >>> pre_split = ExampleGen(input_base="data/", input_pattern="{SPLIT}/*.csv")
    >>> daily = ExampleGen(input_base="data/", input_pattern="span-{SPAN}/v{VERSION}/*.jsonl", format="jsonl")
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jfx import _storage as storage
from jfx._arrays import from_numpy, to_numpy
from jfx.components._beam import beam_options, resolve_beam_args
from jfx.components._examples import SPLIT_PREFIX
from jfx.components._readers import (
    FORMATS,
    JFX_TYPES,
    FilePart,
    ON_BAD_ROWS,
    arrow_type,
    column_types,
    conform,
    format_of,
    ReadPlan,
    Restart,
    _widen,
    iter_blocks,
    stream_block_bytes,
    unify_types,
)
from jfx.errors import DataValidationError, InvalidArgumentError
from jfx.pipelines._component import Input, Output, Parameter, component
from jfx.pipelines._context import check_cancelled
from jfx.pipelines._artifacts import Examples, Schema

__all__ = [
    "ExampleGen",
    "InputFile",
    "InputSelection",
    "select_inputs",
    "fingerprint_inputs",
    "fingerprint_files",
    "row_hashes",
    "assign_splits",
    "DEFAULT_SPLITS",
]

log = logging.getLogger(__name__)

DEFAULT_SPLITS = {"train": 2, "eval": 1}
_SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_CHUNK = 1 << 20
#: Rows per Parquet row group ExampleGen writes (blocks are gathered per split up to this);
#: ``JFX_ROW_GROUP_ROWS`` overrides it (tests force small row groups, so that the readers
#: downstream run over many pieces on small data).
ROW_GROUP_ROWS = 131_072


#: Bytes per Beam element when one large file (a local CSV file, a Parquet file) is converted by several workers;
#: ``JFX_BEAM_PART_BYTES`` overrides it (tests force small parts).
BEAM_PART_BYTES = 64 << 20


def row_group_rows() -> int:
    value = os.environ.get("JFX_ROW_GROUP_ROWS")
    return max(int(value), 1) if value else ROW_GROUP_ROWS


# ------------------------------------------------------------------ input files


@dataclass(frozen=True)
class InputFile:
    """One input file: its path (a URI for an object on a store), its path relative to
    ``input_base`` (posix), and its split when the input is pre-split with ``{SPLIT}``.
    On a store, the listing's ``size`` and ``checksum`` (the ETag) come with it."""

    path: Path | str
    rel: str
    split: str | None = None
    size: int | None = None
    checksum: str | None = None
    part: FilePart | None = None  # on Beam: the part of the file this element reads


@dataclass(frozen=True)
class InputSelection:
    """The files ExampleGen reads, sorted by relative path, and the span/version chosen."""

    files: tuple[InputFile, ...]
    span: int | None = None
    version: int | None = None
    splits: tuple[str, ...] | None = None  # pre-split names, or None to hash-split


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """``input_pattern`` → a regex over relative posix paths. ``*`` and ``?`` stay within one
    folder, ``**`` spans folders; ``{SPLIT}``, ``{SPAN}`` (digits) and ``{VERSION}`` (digits)
    capture."""
    out, seen = [], set()
    tokens = re.split(r"(\{[A-Za-z_]+\}|\*\*/|\*\*|\*|\?)", pattern)
    for tok in tokens:
        if tok in ("{SPLIT}", "{SPAN}", "{VERSION}"):
            name = tok[1:-1].lower()
            if name in seen:
                out.append(f"(?P={name})")
            else:
                seen.add(name)
                out.append(f"(?P<{name}>[^/]+)" if name == "split" else rf"(?P<{name}>\d+)")
        elif tok.startswith("{"):
            raise InvalidArgumentError(
                f"input_pattern {pattern!r}: unknown placeholder {tok}; the placeholders are {{SPLIT}}, "
                "{SPAN} and {VERSION}"
            )
        elif tok == "**/":
            out.append(r"(?:.*/)?")
        elif tok == "**":
            out.append(r".*")
        elif tok == "*":
            out.append(r"[^/]*")
        elif tok == "?":
            out.append(r"[^/]")
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out))


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/"))


def _list_remote(base: str) -> list[tuple[str, InputFile]]:
    """Every object under the prefix ``base`` (one listing: sizes and ETags, nothing
    downloaded), as :func:`_walk` sees a folder."""
    return [(f.rel, InputFile(f.uri, f.rel, size=f.size, checksum=f.checksum))
            for f in storage.list_files(base) if not _hidden(f.rel)]


def _walk(base: Path) -> list[tuple[str, Path]]:
    """Every file under ``base`` (relative posix path, path), sorted; names starting with
    ``.`` or ``_`` (``_SUCCESS``, ``.ipynb_checkpoints``) are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in filenames:
            if not name.startswith((".", "_")):
                full = Path(dirpath, name)
                found.append((full.relative_to(base).as_posix(), full))
    return sorted(found)


def _split_order(names: Iterable[str]) -> list[str]:
    """Split names in the order they are listed: train, eval, then the rest by name."""
    rank = {"train": 0, "eval": 1}
    return sorted(set(names), key=lambda n: (rank.get(n, 2), n))


def select_inputs(
    input_base: str | os.PathLike[str],
    format: str = "csv",  # noqa: A002 - the component's parameter name
    input_pattern: str | None = None,
    span: int | None = None,
    version: int | None = None,
) -> InputSelection:
    """The files an ExampleGen with these parameters reads.

    Without ``input_pattern``: every file under ``input_base`` (recursively) whose name ends
    like the format (``.csv``, ``.parquet``/``.pq``, ``.jsonl``/``.ndjson``/``.json``, and
    compressed ``.gz`` variants of the text formats). With it: the files whose path relative
    to ``input_base`` matches it. ``{SPAN}``/``{VERSION}``: the latest span (then the
    latest version in it) unless pinned. Names starting with ``.`` or ``_`` are skipped.

    Raises:
        DataValidationError: ``input_base`` is missing, no file matches, or a pinned span
            or version is not there.
        InvalidArgumentError: a bad pattern, or a pin without its placeholder.
    """
    fmt = format_of(format)
    if input_pattern is not None and (input_pattern.startswith("/") or ".." in input_pattern.split("/")):
        raise InvalidArgumentError(f"input_pattern {input_pattern!r} must be relative to input_base, inside it")
    files: list[tuple[str, Any]]
    if storage.is_remote(str(input_base)):
        base: Any = storage.check_uri(str(input_base))
        files = _list_remote(base)
        if not files:
            raise DataValidationError(
                f"input_base {base!r}: no objects under this prefix (it does not exist or is empty); "
                f"give the prefix that holds the {fmt} files")
    else:
        base = Path(input_base)
        if not base.is_dir():
            what = "is a file, not a folder" if base.exists() else "does not exist"
            raise DataValidationError(f"input_base {str(base)!r} {what}; give the folder that holds the {fmt} files")
        files = _walk(base)
    if input_pattern is None:
        if span is not None or version is not None:
            raise InvalidArgumentError("span and version need an input_pattern with {SPAN} (and {VERSION})")
        chosen: list[tuple[str, Any, dict[str, Any]]] = [(rel, p, {}) for rel, p in files if rel.lower().endswith(FORMATS[fmt])]
        if not chosen:
            raise DataValidationError(
                f"no {fmt} files under {str(base)!r} (looked for names ending {', '.join(FORMATS[fmt])}); "
                "check input_base and format, or give input_pattern"
            )
    else:
        rx = _pattern_regex(input_pattern)
        if span is not None and "span" not in rx.groupindex:
            raise InvalidArgumentError(f"span={span} is pinned but input_pattern {input_pattern!r} has no {{SPAN}}")
        if version is not None and "version" not in rx.groupindex:
            raise InvalidArgumentError(
                f"version={version} is pinned but input_pattern {input_pattern!r} has no {{VERSION}}"
            )
        if "version" in rx.groupindex and "span" not in rx.groupindex:
            raise InvalidArgumentError(f"input_pattern {input_pattern!r}: {{VERSION}} needs {{SPAN}} too")
        chosen = [(rel, p, m.groupdict()) for rel, p in files if (m := rx.fullmatch(rel))]
        if not chosen:
            raise DataValidationError(f"no file under {str(base)!r} matches input_pattern {input_pattern!r}")
    sel_span = sel_version = None
    if chosen and "span" in chosen[0][2]:
        spans = sorted({int(g["span"]) for _, _, g in chosen})
        sel_span = spans[-1] if span is None else span
        if sel_span not in spans:
            raise DataValidationError(
                f"span {span} not found under {str(base)!r} with input_pattern {input_pattern!r}; "
                f"spans present: {', '.join(map(str, spans))}"
            )
        chosen = [c for c in chosen if int(c[2]["span"]) == sel_span]
        if "version" in chosen[0][2]:
            versions = sorted({int(g["version"]) for _, _, g in chosen})
            sel_version = versions[-1] if version is None else version
            if sel_version not in versions:
                raise DataValidationError(
                    f"version {version} of span {sel_span} not found under {str(base)!r}; "
                    f"versions present: {', '.join(map(str, versions))}"
                )
            chosen = [c for c in chosen if int(c[2]["version"]) == sel_version]
    pre_split = bool(chosen) and "split" in chosen[0][2]
    inputs = []
    for rel, p, groups in chosen:
        name = groups.get("split") if pre_split else None
        if name is not None and not _SPLIT_NAME_RE.match(name):
            raise DataValidationError(f"{rel}: split name {name!r} (from {{SPLIT}}) must be letters, digits, _ . -")
        if isinstance(p, InputFile):  # listed on a store
            inputs.append(InputFile(p.path, rel, name, p.size, p.checksum))
        else:
            inputs.append(InputFile(p, rel, name))
    splits = tuple(_split_order([f.split for f in inputs if f.split])) if pre_split else None
    return InputSelection(tuple(inputs), sel_span, sel_version, splits)


def fingerprint_files(files: Sequence[InputFile]) -> str:
    """A blake2b hash of the files' relative paths, sizes and bytes (sorted by path).

    An object on a store contributes its size and checksum (the ETag its listing gave,
    which changes whenever the object is written again) instead of its bytes: nothing is
    downloaded to fingerprint it.
    """
    return _fingerprint(files)


def _fingerprint(files: Sequence[InputFile], stop: threading.Event | None = None) -> str:
    """:func:`fingerprint_files`; ``stop`` set: give up between chunks (returns ``""``)."""
    h = hashlib.blake2b(digest_size=20)
    for f in sorted(files, key=lambda f: f.rel):
        h.update(b"\0f")
        h.update(f.rel.encode())
        h.update(b"\0")
        if f.checksum is not None:
            h.update(f"{f.size}\0etag:{f.checksum}".encode())
            continue
        h.update(str(Path(f.path).stat().st_size).encode())
        with open(f.path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                if stop is not None and stop.is_set():
                    return ""
                h.update(chunk)
    return h.hexdigest()


def fingerprint_inputs(
    input_base: str | os.PathLike[str],
    format: str = "csv",  # noqa: A002 - the component's parameter name
    input_pattern: str | None = None,
    span: int | None = None,
    version: int | None = None,
) -> str:
    """The ``input_fingerprint`` an ExampleGen with these parameters would record, computed
    without converting anything: the cache's "external input fingerprint" for ExampleGen.

    It hashes the *contents* of the files :func:`select_inputs` chooses (one streaming read
    of each; sizes and mtimes are not enough: a file rewritten in the same second with the
    same size must miss the cache; on an object store, each object's ETag from the one
    listing stands for its bytes), with their paths relative to ``input_base``, so a
    changed, added, removed or renamed input file, or a new latest span or version, gives
    a different fingerprint. Raises what :func:`select_inputs` raises.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.csv").write_text("x\\n1\\n")
        >>> before = fingerprint_inputs(d); _ = (d / "a.csv").write_text("x\\n2\\n")
        >>> before != fingerprint_inputs(d)
        True
    """
    return fingerprint_files(select_inputs(input_base, format, input_pattern, span, version).files)


# ------------------------------------------------------------------ row hashing

_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
_NULL_HASH = np.uint64(0x6A09E667F3BCC908)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_STRING_BLOCK_BYTES = 1 << 23


def _mix(x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """splitmix64's finaliser: a bijective, well-mixing map of uint64 arrays (``inplace``:
    of ``x`` itself, which must be a uint64 array of its own)."""
    with np.errstate(over="ignore"):
        if inplace:
            x += _GOLD
            z = x
        else:
            z = x + _GOLD  # a new array: the steps below work in place
        z ^= z >> _S30
        z *= _M1
        z ^= z >> _S27
        z *= _M2
        z ^= z >> _S31
        return z


def _hash_strings(arr: pa.Array) -> np.ndarray:
    """A uint64 hash of each string's UTF-8 bytes, vectorised: every (byte, position) pair is
    mixed and the results summed per string, then mixed with the length."""
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    out = np.empty(n, dtype=np.uint64)
    row = 0
    while row < n:  # blocks of rows of about _STRING_BLOCK_BYTES bytes, to bound memory
        end = int(np.searchsorted(offsets, offsets[row] + _STRING_BLOCK_BYTES, side="right")) - 1
        end = min(max(end, row + 1), n)
        starts, stops = offsets[row:end], offsets[row + 1:end + 1]
        lengths = stops - starts
        lo, hi = int(starts[0]), int(stops[-1])
        sums = np.zeros(end - row, dtype=np.uint64)
        if hi > lo:
            owner = np.repeat(np.arange(end - row), lengths)
            pos = (np.arange(lo, hi, dtype=np.int64) - starts[owner]).astype(np.uint64)
            v = _mix(data[lo:hi].astype(np.uint64) | (pos << np.uint64(8)))
            nonempty = lengths > 0
            with np.errstate(over="ignore"):
                sums[nonempty] = np.add.reduceat(v, (starts[nonempty] - lo).astype(np.int64))
        out[row:end] = _mix(sums ^ _mix(lengths.astype(np.uint64)))
        row = end
    return out


def _filled(arr: pa.Array, value: Any) -> np.ndarray:
    """``arr`` as NumPy with nulls as ``value`` (no fill pass over a column without nulls)."""
    return to_numpy(arr.fill_null(value) if arr.null_count else arr)


def _values(arr: pa.Array, dtype: type) -> np.ndarray:
    """The values buffer of a fixed-width array as NumPy, without a copy; what lies under a
    null is unspecified (the caller replaces the hashes of nulls)."""
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * np.dtype(dtype).itemsize)


def _column_hash(arr: pa.Array) -> np.ndarray:
    """uint64 per value from the value alone (nulls all hash alike).

    Numbers are read from their buffers as they are (no fill pass, no copy); the hash of
    every null is set at the end.
    """
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t) or arr.null_count == n:
        return np.full(n, _NULL_HASH, dtype=np.uint64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        # Hash each distinct value once (categorical columns have few); nulls get an index
        # of their own (whose hash is replaced below), so the indices need no fill.
        enc = pc.dictionary_encode(arr, null_encoding="encode")
        h = _hash_strings(enc.dictionary)[_values(enc.indices, np.int32)]
    elif t == pa.float64():
        v = _values(arr, np.float64) + 0.0  # -0.0 → 0.0 (and a copy of its own)
        nan = np.isnan(v)
        if nan.any():
            v[nan] = np.nan  # one NaN
        h = _mix(v.view(np.uint64) ^ np.uint64(1), inplace=True)
    elif t == pa.bool_():
        h = _mix(_filled(arr, False).astype(np.uint64) ^ np.uint64(2))
    elif t == pa.int64() or pa.types.is_timestamp(t):
        h = _mix(_values(arr, np.int64).view(np.uint64) ^ np.uint64(3), inplace=True)
    else:
        raise AssertionError(f"unexpected column type {t}")
    if arr.null_count:
        h[to_numpy(arr.is_null())] = _NULL_HASH
    return h


@functools.lru_cache(maxsize=4096)
def _name_salt(name: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


def row_hashes(table: pa.Table, columns: Sequence[str] | None = None) -> np.ndarray:
    """A deterministic uint64 per row from the values of ``columns`` (default: all), taken
    in name order, so it does not depend on column order, row order, batches or process.

    Example:
        >>> t = pa.table({"a": [1, 2, 1], "b": ["x", "y", "x"]})
        >>> h = row_hashes(t)
        >>> bool(h[0] == h[2]), bool(h[0] == h[1])
        (True, False)
    """
    names = sorted(columns if columns is not None else table.column_names)
    acc = np.full(table.num_rows, np.uint64(0x243F6A8885A308D3), dtype=np.uint64)
    for name in names:
        col = table.column(name)
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        with np.errstate(over="ignore"):
            acc *= _M1
            h = _column_hash(arr)
            h ^= _name_salt(name)
            acc += h
            _mix(acc, inplace=True)
    return acc


def assign_splits(hashes: np.ndarray, weights: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    """Split index per row from its hash: the hash space is cut in shares by ``weights``,
    splits taken in name order (so the result does not depend on the dict's order).

    Returns the names in that order and an index into them per row.
    """
    names = sorted(weights)
    w = np.array([float(weights[n]) for n in names])
    bounds = np.cumsum(w) / w.sum()
    u = (hashes >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))  # uniform in [0, 1)
    return names, np.minimum(np.searchsorted(bounds, u, side="right"), len(names) - 1)


# ------------------------------------------------------------------ conversion


@dataclass(frozen=True)
class _Plan:
    """Everything one file's conversion needs (picklable, for Beam)."""

    fmt: str
    out_uri: str
    on_bad_rows: str
    forced: dict[str, str]          # from the Schema
    weights: dict[str, float] | None  # hash split; None when pre-split
    split_key: str | None


def _check_weights(splits: Mapping[str, Any] | None) -> dict[str, float]:
    if splits is None:
        return {k: float(v) for k, v in DEFAULT_SPLITS.items()}
    if not isinstance(splits, Mapping) or not splits:
        raise InvalidArgumentError(f'splits must be a non-empty dict of name → weight, e.g. {{"train": 2, "eval": 1}}; got {splits!r}')
    out = {}
    for name, w in splits.items():
        if not isinstance(name, str) or not _SPLIT_NAME_RE.match(name):
            raise InvalidArgumentError(f"split name {name!r} must be letters, digits, _ . -")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0 or w != w or w == float("inf"):
            raise InvalidArgumentError(f"split {name!r}: weight must be a positive number; got {w!r}")
        out[name] = float(w)
    return out


def _schema_types(schema: Schema | None) -> dict[str, str]:
    if schema is None:
        return {}
    path = Path(schema.uri) / "schema.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        columns = doc["columns"]
        types = {str(c): spec["type"] for c, spec in columns.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise DataValidationError(f"{path}: not a readable schema.json with columns and their types ({err})") from err
    for c, t in types.items():
        if t not in JFX_TYPES:
            raise DataValidationError(f"{path}: column {c!r} has type {t!r}; expected one of {', '.join(JFX_TYPES)}")
    return types


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns ExampleGen's shards dictionary-encode: text, ints and bools, which repeat.
    Floats and timestamps seldom do; trying a dictionary on them cost about 40% of the
    writer's time (measured on the taxi table) for a few percent of size."""
    return [f.name for f in schema if not (pa.types.is_floating(f.type) or pa.types.is_timestamp(f.type))]


def _shard_path(out_uri: str, split: str, index: int) -> Path:
    return Path(out_uri) / f"{SPLIT_PREFIX}{split}" / f"part-{index:05d}.parquet"


def _split_parts(plan: _Plan, table: pa.Table, split: str | None) -> dict[str, pa.Table]:
    if split is not None:
        return {split: table}
    assert plan.weights is not None
    if plan.split_key is not None and plan.split_key not in table.column_names:
        raise DataValidationError(
            f"split_key {plan.split_key!r} is not a column; columns: {', '.join(table.column_names)}"
        )
    names, idx = assign_splits(row_hashes(table, [plan.split_key] if plan.split_key else None), plan.weights)
    return {name: table.filter(from_numpy(idx == i)) for i, name in enumerate(names)}


def _stream_file(plan: _Plan, f: InputFile, index: int, forced: Mapping[str, str],
                 columns: Mapping[str, str] | None = None,
                 *, write: bool = True) -> tuple[dict[str, str | None], dict[str, int], int]:
    """Convert one file block by block into its split shards (row groups gathered per split
    up to :func:`row_group_rows`, so memory holds a few blocks, never the file).

    ``columns``: the unified types, when the file is converted again with them (its shards
    then have their columns, in their order). Returns the types the file was written with (``None``: a column with no value, written
    as string), rows per split and bad rows skipped. A block whose column type differs from
    the first block's makes the file be read again with that column widened. ``write=False``:
    only read it, for its types (rows per split are then not counted).
    """
    rplan = ReadPlan(stream_block_bytes())
    while True:
        try:
            return _write_blocks(plan, f, index, forced, columns, rplan, write)
        except Restart as again:
            rplan = again.plan


def _write_blocks(plan: _Plan, f: InputFile, index: int, forced: Mapping[str, str],
                  columns: Mapping[str, str] | None, rplan: ReadPlan,
                  write: bool = True) -> tuple[dict[str, str | None], dict[str, int], int]:
    written: dict[str, str | None] | None = None
    writers: dict[str, pq.ParquetWriter] = {}
    pending: dict[str, list[pa.Table]] = {}
    gathered: list[pa.Table] = []  # blocks read but not split yet
    rows: dict[str, int] = {}
    bad = 0
    done = False
    group_rows = row_group_rows()
    # Row groups are encoded and compressed on a thread of their own (pyarrow lets go of the
    # GIL), while the next blocks are parsed and split: one group at a time, so memory holds
    # at most the group being written and the ones being gathered.
    from concurrent.futures import Future, ThreadPoolExecutor

    encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jfx-example-gen-write")
    writing: list[Future] = []

    def wait() -> None:
        while writing:
            writing.pop().result()

    def flush(name: str) -> None:
        """Hand the split's pending rows to the encoder: a full row group of ``group_rows``
        rows (what is left over stays pending), or at the end all of them."""
        group = pa.concat_tables(pending.pop(name))
        if group.num_rows > group_rows:
            pending[name] = [group.slice(group_rows)]
            group = group.slice(0, group_rows)
        if name not in writers:
            target = _shard_path(plan.out_uri, name, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            writers[name] = pq.ParquetWriter(target, group.schema, use_dictionary=_dictionary_columns(group.schema))
        wait()
        writing.append(encoder.submit(writers[name].write_table, group, row_group_size=group.num_rows))

    def split_gathered() -> None:
        # Blocks are hashed and split together, about a row group's worth at a time: per
        # 2 MiB block, NumPy's and pyarrow's per-call costs came to about half the work.
        table = pa.concat_tables(gathered)
        gathered.clear()
        if f.split is None and table.column_names:
            table = table.combine_chunks()
        for name, part in _split_parts(plan, table, f.split).items():
            if not part.num_rows:
                continue
            pending.setdefault(name, []).append(part)
            rows[name] = rows.get(name, 0) + part.num_rows
            while name in pending and sum(t.num_rows for t in pending[name]) >= group_rows:
                flush(name)

    try:
        for block in iter_blocks(f.path, plan.fmt, forced=forced, on_bad_rows=plan.on_bad_rows,
                                 name=f.rel, plan=rplan, part=f.part):
            check_cancelled()  # Ctrl-C: stop at this block, before writing more
            bad += block.bad_rows
            types = column_types(block.table)
            if written is None:
                written = dict(types)
            for col, t in types.items():
                w = written.get(col)
                if col not in written:  # a JSON Lines field first met in a later block
                    if not writers and not pending and not gathered:
                        written[col] = t
                        continue
                    raise Restart(rplan.widen(col, t))
                if t is None or t == w:
                    continue
                if w is None and not writers and not pending and not gathered:
                    written[col] = t
                    continue
                raise Restart(rplan.widen(col, _widen(w, t) if w is not None else t))
            if not block.table.num_rows or not write:
                continue
            # Converted again with the unified types: in their column order, every column.
            gathered.append(conform(block.table, columns or {c: t or "string" for c, t in written.items()}))
            if sum(t.num_rows for t in gathered) >= group_rows:
                split_gathered()
        if gathered:
            split_gathered()
        for name in list(pending):
            flush(name)
        wait()
        done = True
    finally:
        for future in writing:  # failed: let a write under way finish before closing its file
            future.exception()
        encoder.shutdown()
        for w in writers.values():
            w.close()
        if not done:  # read again, or failed: what this file wrote is void
            for name in writers:
                _shard_path(plan.out_uri, name, index).unlink(missing_ok=True)
    assert written is not None
    return written, rows, bad


def _run_in_process(plan: _Plan, sel: InputSelection) -> tuple[dict[str, str], dict[str, int], int]:
    """Convert every file in this process, streaming: each file is written in blocks with
    the types it has; the files whose types differ from the types unified over all files
    (or that lack a column, or have them in another order) are converted again with those types."""
    done = [_stream_file(plan, f, i, plan.forced) for i, f in enumerate(sel.files)]
    types = unify_types([(f.rel, d[0]) for f, d in zip(sel.files, done, strict=True)], plan.fmt)
    rows: dict[str, int] = {}
    bad_total = 0
    for i, f in enumerate(sel.files):
        written, got, bad = done[i]
        if [(c, t or "string") for c, t in written.items()] != list(types.items()):  # types or order
            for name in got:  # its rows may fall in other splits with other types
                _shard_path(plan.out_uri, name, i).unlink(missing_ok=True)
            written, got, bad = _stream_file(plan, f, i, {**types, **plan.forced}, types)
        bad_total += bad
        for name, n in got.items():
            rows[name] = rows.get(name, 0) + n
    return types, rows, bad_total


# ---- Beam: the same per-file functions as Beam transforms.


def _beam_infer(item: tuple[int, InputFile], plan: _Plan) -> tuple[int, str, Any]:
    """On a worker: one file's types, read in blocks as the in-process engine's first pass reads it."""
    i, f = item
    try:
        types, _, _ = _stream_file(plan, f, i, plan.forced, write=False)
        return i, f.rel, types
    except DataValidationError as err:  # reported by the driver, first file first, as in-process
        return i, f.rel, {"__error__": str(err)}


def _beam_unify(found: list[tuple[int, str, Any]], fmt: str) -> dict[str, Any]:
    found = sorted(found)
    for _, _, types in found:
        if "__error__" in types:
            return types
    try:
        return unify_types([(rel, types) for _, rel, types in found], fmt)
    except DataValidationError as err:
        return {"__error__": str(err)}


def _beam_convert(item: tuple[int, InputFile], plan: _Plan, types: dict[str, Any], results: str) -> None:
    """On a worker: convert one file or part; its shards and report reach the driver through ``results``."""
    from jfx.components._beam import worker_output, write_report

    i, f = item
    report: dict[str, Any] = {"index": i, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    if "__error__" in types:
        report["error"] = types["__error__"]
    else:
        try:
            with worker_output(results) as local:  # read and written in blocks, as in-process
                _, rows, bad = _stream_file(replace(plan, out_uri=str(local)), f, i, {**types, **plan.forced}, types)
            report.update(rows=rows, bad_rows=bad, types=types)
        except DataValidationError as err:
            report["error"] = str(err)
    write_report(results, f"{i:05d}", report)


def beam_part_bytes() -> int:
    value = os.environ.get("JFX_BEAM_PART_BYTES")
    return max(int(value), 1) if value else BEAM_PART_BYTES


def _beam_parts(files: Sequence[InputFile], fmt: str) -> list[InputFile]:
    """The elements of the Beam pipeline, in input order: each file, or, for a file over
    :func:`beam_part_bytes`, its parts of about that many bytes, so that one large file is
    converted by several workers: a local uncompressed CSV file's whole records (each part
    read with the header), a Parquet file's row groups. Their shards, numbered in this
    order, hold the rows in the order the files have them."""
    from jfx.components import _csv_scan

    parts: list[InputFile] = []
    every = beam_part_bytes()
    for f in files:
        if fmt == "csv" and not _csv_scan.streamed(f.path) and Path(f.path).stat().st_size > every \
                and _csv_scan.unclosed_quote(f.path) is None:  # a quote left open fails the file whole
            cuts = _csv_scan.record_boundaries(f.path, every)
            spans = [FilePart(start, end, cuts[0]) for start, end in itertools.pairwise(cuts)]
        elif fmt == "parquet":
            spans = _row_group_parts(f, every)
        else:
            spans = []
        parts.extend([replace(f, part=span) for span in spans] if len(spans) > 1 else [f])
    return parts


def _row_group_parts(f: InputFile, every: int) -> list[FilePart]:
    """A Parquet file's row groups in runs of about ``every`` bytes (from its footer)."""
    try:
        meta = (storage.open_parquet(f.path) if storage.is_remote(str(f.path)) else pq.ParquetFile(f.path)).metadata
    except (pa.ArrowException, OSError):  # the worker reads it and words the error
        return []
    spans: list[FilePart] = []
    start, size = 0, 0
    for g in range(meta.num_row_groups):
        size += meta.row_group(g).total_byte_size
        if size >= every or g == meta.num_row_groups - 1:
            spans.append(FilePart(start, g + 1))
            start, size = g + 1, 0
    return spans


def _run_beam(plan: _Plan, sel: InputSelection, args: list[str]) -> tuple[dict[str, str], dict[str, int], int]:
    """The same conversion as a Beam pipeline: each input file an element, a large file one
    element per part (:func:`_beam_parts`)."""
    from jfx.components._beam import quiet_beam_import, read_reports, receive_files, results_folder, worker_errors

    quiet_beam_import()
    import apache_beam as beam

    parts = _beam_parts(sel.files, plan.fmt)

    options = beam_options(args)
    with worker_errors(), results_folder(options, "jfx-examplegen-") as results:
        with beam.Pipeline(options=options) as p:
            # spread over the workers, as the statistics engine's Beam pipeline does
            files = p | "Files" >> beam.Create(list(enumerate(parts))) | "Spread" >> beam.Reshuffle()
            types = (
                files
                | "InferTypes" >> beam.Map(_beam_infer, plan)
                | "Collect" >> beam.combiners.ToList()
                | "Unify" >> beam.Map(_beam_unify, plan.fmt)
            )
            _ = files | "Convert" >> beam.Map(_beam_convert, plan, beam.pvalue.AsSingleton(types), results)
        reports = sorted(read_reports(results), key=lambda r: r["index"])
        receive_files(results, plan.out_uri)
    if len(reports) != len(parts):
        raise DataValidationError(f"the Beam pipeline converted {len(reports)} of {len(parts)} input files and parts")
    for r in reports:
        if "error" in r:
            raise DataValidationError(r["error"])
    log.info("ExampleGen: %d input file(s) converted as %d element(s) by %d Beam worker process(es)",
             len(sel.files), len(parts), len({r["worker"] for r in reports}))
    rows: dict[str, int] = {}
    for r in reports:
        for name, n in r["rows"].items():
            rows[name] = rows.get(name, 0) + n
    return reports[0]["types"], rows, sum(r["bad_rows"] for r in reports)


# ------------------------------------------------------------------ the component


def _input_fingerprint(params: dict[str, Any]) -> str:
    """The cache's external-input fingerprint: the selected input files' bytes."""
    return fingerprint_inputs(params["input_base"], params.get("format") or "csv", params.get("input_pattern"),
                              params.get("span"), params.get("version"))


@component(external_fingerprint=_input_fingerprint, checks={"splits": _check_weights})
def ExampleGen(  # noqa: N802 - components are named like classes; the node id is "ExampleGen"
    examples: Output[Examples],
    input_base: Parameter[str],
    format: Parameter[str] = "csv",  # noqa: A002
    splits: Parameter[dict] | None = None,
    split_key: Parameter[str] | None = None,
    input_pattern: Parameter[str] | None = None,
    span: Parameter[int] | None = None,
    version: Parameter[int] | None = None,
    on_bad_rows: Parameter[str] = "error",
    schema: Optional[Input[Schema]] = None,  # noqa: UP045 - the DSL reads Optional[...]
    beam_pipeline_args: Parameter[list] | None = None,
):
    """Read the files under ``input_base`` into Parquet shards per split.

    Args:
        examples: the output (see docs/artifacts.md).
        input_base: the folder holding the input files, or a prefix on an object store
            (``s3://bucket/data``, ``gs://...``): its objects are listed once (their
            ETags fingerprint them) and read as streams.
        format: ``"csv"`` (header line required; values may hold line breaks when quoted;
            a record may be up to 256 MiB long), ``"parquet"`` or ``"jsonl"``.
        splits: split name → weight of a hash split (default ``{"train": 2, "eval": 1}``).
            Ignored when the input is pre-split with ``{SPLIT}``.
        split_key: hash this column's value instead of the whole row, so that all rows
            with the same key (a user, a session) fall in the same split.
        input_pattern: which files, relative to ``input_base`` (``*``, ``?``, ``**``);
            ``{SPLIT}`` takes splits as given by folder or file names, ``{SPAN}`` and
            ``{VERSION}`` (digits) select the latest span and version.
        span, version: pin a span (and version) instead of taking the latest.
        on_bad_rows: ``"error"`` (default) or ``"skip"``: drop malformed rows and values
            that cannot be converted to the schema's type, counted in ``bad_rows_skipped``.
            A CSV quote that opens a value and never closes fails the run either way
            (where its row ends is unknown; read as one value it would swallow the rest).
        schema: an optional Schema whose column types are used instead of inferred ones.
        beam_pipeline_args: run the conversion as a Beam pipeline with these args: each
            input file is an element, and a file over 64 MiB (``JFX_BEAM_PART_BYTES``) is
            cut into parts, each an element, so that several workers convert one large
            file: a local uncompressed CSV file into whole records, a Parquet file into
            runs of row groups. The rows, their splits and their order
            across the shards are those of the in-process engine; errors name the line in
            the whole file.

    Raises:
        DataValidationError: missing input, no matching files, an empty or undecodable
            file, a CSV quote that never closes or a CSV record over 256 MiB, files with
            different columns, or a bad row (naming the file and line).
    """
    fmt = format_of(format)
    if on_bad_rows not in ON_BAD_ROWS:
        raise InvalidArgumentError(f"on_bad_rows must be 'error' or 'skip'; got {on_bad_rows!r}")
    weights = _check_weights(splits)
    sel = select_inputs(input_base, fmt, input_pattern, span, version)
    forced = _schema_types(schema)
    plan = _Plan(fmt, examples.uri, on_bad_rows, forced, None if sel.splits else weights, split_key)
    args = resolve_beam_args(beam_pipeline_args)
    # The input's fingerprint is hashed on a thread of its own while the files are converted
    # (hashlib lets go of the GIL); a failed conversion stops it at its next chunk.
    fingerprint: list[str] = []
    stop = threading.Event()
    def hash_inputs() -> None:
        try:
            fingerprint.append(_fingerprint(sel.files, stop))
        except OSError:  # hashed again below, where the error is raised
            pass

    hasher = threading.Thread(target=hash_inputs, name="jfx-example-gen-fingerprint", daemon=True)
    hasher.start()
    try:
        if args is None:
            types, rows, bad = _run_in_process(plan, sel)
        else:
            types, rows, bad = _run_beam(plan, sel, args)
    except BaseException:
        stop.set()
        raise
    finally:
        hasher.join(None if not stop.is_set() else 5)
    names = list(sel.splits) if sel.splits else _split_order(weights)
    total = sum(rows.values())
    if total == 0:
        listed = ", ".join(f.rel for f in sel.files[:5]) + (" ..." if len(sel.files) > 5 else "")
        raise DataValidationError(
            f"no data rows in the input files under {input_base!r} ({listed})"
            + (f"; {bad} bad row(s) were skipped" if bad else "; a header line alone holds no examples")
        )
    schema_arrow = pa.schema([(c, arrow_type(t)) for c, t in types.items()])
    for name in names:
        if not rows.get(name):  # an empty split still gets one (empty) shard, so readers find it
            target = _shard_path(examples.uri, name, 0)
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(schema_arrow.empty_table(), target)
    examples.properties.update(
        splits=names,
        row_counts={name: rows.get(name, 0) for name in names},
        columns=dict(types),
        format=fmt,
        input_fingerprint=fingerprint[0] if fingerprint else fingerprint_files(sel.files),
        span=sel.span,
        version=sel.version,
        bad_rows_skipped=bad,
    )
