"""Data feeding: Parquet files / Arrow tables → shuffled, batched, sharded device arrays.

The host side is vectorised: Parquet is read with pyarrow in large record batches,
each converted once into a few *packed* NumPy matrices (all float features side by
side, all integer features side by side, the label, the weight), shuffled through a
seeded buffer and cut into batches with whole-array operations; no Python runs per
row. A background thread reads ahead and puts ``prefetch`` batches on the devices,
sharded along the batch over a 1-D mesh ``"data"`` of all local devices. On CPU
devices the training engine instead takes the host batches and lets its jitted step
shard them (:meth:`Dataset.feed_batches`): far cheaper than ``jax.device_put``.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import pyarrow as pa
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jfx._arrays import to_numpy
from jfx.core._encoding import encode_strings, validate_encoder
from jfx.errors import DataValidationError, InvalidArgumentError

__all__ = ["Batch", "Dataset", "data_mesh", "batch_sharding", "replicated_sharding"]

_REMAINDERS = ("drop", "pad")


class Batch(NamedTuple):
    """One batch: a dict of feature arrays, the label (or None) and per-row weights.

    ``weight`` is 1.0 for real rows (or the weight column's value) and 0.0 for rows
    added by ``remainder="pad"``; losses and metrics are weighted by it, so padded
    rows never count.
    """

    features: dict[str, Any]
    label: Any
    weight: Any


def data_mesh() -> Mesh:
    """The 1-D mesh ``("data",)`` over all local devices."""
    return Mesh(np.array(jax.local_devices()), ("data",))


def batch_sharding(mesh: Mesh | None = None, leading: int = 0) -> NamedSharding:
    """Sharding of a batch array along its batch axis (after ``leading`` unsharded axes)."""
    return NamedSharding(mesh or data_mesh(), PartitionSpec(*([None] * leading), "data"))


def replicated_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """Sharding that keeps a full copy on every device (parameters, optimiser state)."""
    return NamedSharding(mesh or data_mesh(), PartitionSpec())


@dataclass(frozen=True)
class _Column:
    name: str
    group: str  # "float" or "int"
    start: int
    width: int
    vector: bool  # (batch, width) instead of (batch,)
    encoder: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class _Layout:
    """Where each feature lives in the packed matrices; unpacks on host or inside jit."""

    columns: tuple[_Column, ...]
    n_float: int
    n_int: int
    label: str | None
    label_dtype: str | None
    label_encoder: Mapping[str, Any] | None
    weight: str | None
    label_shape: tuple[int, ...] = ()  # per row: (k,) for a fixed-size list label

    def unpack(self, floats: Any, ints: Any) -> dict[str, Any]:
        out = {}
        for c in self.columns:
            src = floats if c.group == "float" else ints
            out[c.name] = src[..., c.start:c.start + c.width] if c.vector else src[..., c.start]
        return out

    def feature_shapes(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        return {c.name: ("float32" if c.group == "float" else "int32", (c.width,) if c.vector else ())
                for c in self.columns}


# Packed host rows: (floats [n, F] f32, ints [n, I] i32, label [n, ...] or None, weight [n] f32).
_Rows = tuple


def _n(rows: _Rows) -> int:
    return rows[3].shape[0]


def _take(rows: _Rows, idx: Any) -> _Rows:
    if isinstance(idx, slice):
        return tuple(None if a is None else a[idx] for a in rows)  # views
    # np.take copies whole rows; fancy indexing a 2-D array (a[idx]) is ~10x slower here
    # and was most of the shuffle's cost.
    return tuple(None if a is None else np.take(a, idx, axis=0) for a in rows)


def _concat(parts: list[_Rows]) -> _Rows:
    if len(parts) == 1:
        return parts[0]
    return tuple(None if parts[0][i] is None else np.concatenate([p[i] for p in parts]) for i in range(4))


def _pad(rows: _Rows, size: int) -> _Rows:
    extra = size - _n(rows)
    out: list[np.ndarray | None] = []
    for a in rows:
        if a is None:
            out.append(None)
        else:
            out.append(np.concatenate([a, np.zeros((extra, *a.shape[1:]), a.dtype)]))
    return tuple(out)


def _type_group(t: pa.DataType) -> str | None:
    if pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        return "string"
    return None


def _build_layout(schema: pa.Schema, features: Sequence[str] | None, label: str | None, weight: str | None,
                  encoders: Mapping[str, Mapping] | None) -> _Layout:
    encoders = {k: validate_encoder(v) for k, v in (encoders or {}).items()}
    names = list(schema.names)
    for col in [label, weight, *(features or [])]:
        if col is not None and col not in names:
            raise DataValidationError(f"column {col!r} is not in the data; columns are {names}")
    if features is None:
        features = [n for n in names if n not in (label, weight)]
    cols: list[_Column] = []
    n_float = n_int = 0
    for name in features:
        t = schema.field(name).type
        width, vector = 1, False
        if pa.types.is_fixed_size_list(t):
            width, vector, t = t.list_size, True, t.value_type
        group = _type_group(t)
        if group == "string":
            if name not in encoders:
                raise DataValidationError(
                    f"feature {name!r} holds strings; give an encoder, e.g. "
                    f"encoders={{{name!r}: {{'vocabulary': [...], 'oov_buckets': 1}}}}, or encode it in Transform"
                )
            group = "int"
        elif group is None:
            raise DataValidationError(
                f"feature {name!r} has type {schema.field(name).type}; expected a number, bool, string or a "
                "fixed-size list of numbers"
            )
        if group == "float":
            cols.append(_Column(name, "float", n_float, width, vector))
            n_float += width
        else:
            cols.append(_Column(name, "int", n_int, width, vector, encoders.get(name)))
            n_int += width
    label_dtype = None
    label_shape: tuple[int, ...] = ()
    if label is not None:
        if pa.types.is_fixed_size_list(schema.field(label).type):
            label_shape = (schema.field(label).type.list_size,)
        g = _type_group(schema.field(label).type)
        if g == "string" and label not in encoders:
            raise DataValidationError(f"label {label!r} holds strings; give encoders={{{label!r}: {{...}}}}")
        label_dtype = "float32" if g == "float" and not pa.types.is_boolean(schema.field(label).type) else "int32"
    return _Layout(tuple(cols), n_float, n_int, label, label_dtype, encoders.get(label) if label else None, weight,
                   label_shape)


def _column_numpy(batch: pa.RecordBatch | pa.Table, name: str, encoder: Mapping[str, Any] | None, dtype: Any) -> np.ndarray:
    col = batch.column(name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if encoder is not None:
        return encode_strings(col.to_numpy(zero_copy_only=False), encoder)
    if col.null_count:
        raise DataValidationError(
            f"feature {name!r} has {col.null_count} missing values; impute them (Transform) before training"
        )
    if pa.types.is_fixed_size_list(col.type):
        flat = to_numpy(col.flatten())
        return flat.astype(dtype, copy=False).reshape(len(col), col.type.list_size)
    return to_numpy(col).astype(dtype, copy=False)


def _pack(batch: pa.RecordBatch | pa.Table, layout: _Layout) -> _Rows:
    n = batch.num_rows
    floats = np.empty((n, layout.n_float), np.float32)
    ints = np.empty((n, layout.n_int), np.int32)
    for c in layout.columns:
        target = floats if c.group == "float" else ints
        values = _column_numpy(batch, c.name, c.encoder, target.dtype)
        target[:, c.start:c.start + c.width] = values.reshape(n, c.width)
    label = None
    if layout.label is not None:
        label = _column_numpy(batch, layout.label, layout.label_encoder, np.dtype(layout.label_dtype))
    if layout.weight is not None:
        weight = _column_numpy(batch, layout.weight, None, np.float32)
    else:
        weight = np.ones((n,), np.float32)
    return floats, ints, label, weight


class _Prefetcher:
    """Runs ``produce`` on a background thread, ``depth`` items ahead of the consumer."""

    _DONE = object()

    def __init__(self, items: Iterator[Any], depth: int):
        self._q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._run, name="jfx-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(err)

    def __iter__(self) -> _Prefetcher:
        return self

    def finished(self) -> bool:
        """Whether the thread has produced everything (or stopped)."""
        return not self._thread.is_alive()

    def __next__(self) -> Any:
        item = self._q.get()
        if item is self._DONE:
            self._thread.join()
            raise StopIteration
        if isinstance(item, BaseException):
            self._thread.join()
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)


class Dataset:
    """Batches from Parquet files or Arrow tables, shuffled, batched and on device.

    Build one with :meth:`from_parquet`, :meth:`from_table` or :meth:`from_arrays`;
    iterate :meth:`epoch` (or the dataset itself, epoch 0) to get :class:`Batch`
    values of ``jax.Array`` sharded over all local devices. The row order of an epoch
    depends only on ``(seed, epoch)``, so a run resumed from a checkpoint sees
    the same batches.

    Args (of the constructors):
        features: feature columns (None: every column but the label and weight).
            Floats and bools become ``float32``, integers ``int32``, fixed-size lists
            ``(batch, k)`` arrays, strings ``int32`` ids through ``encoders``.
        label: the label column, or None.
        batch_size: rows per batch (global, across devices).
        shuffle_buffer: rows in the shuffle buffer; 0 or None reads in order. A buffer
            at least as large as the data gives a full uniform shuffle.
        seed: shuffle seed; epoch ``e`` uses ``np.random.default_rng([seed, e])``.
        remainder: ``"drop"`` the last partial batch, or ``"pad"`` it with rows of
            weight 0.
        prefetch: batches put on the device ahead of use by a background thread
            (0: no thread). When the engine feeds CPU devices the thread reads one
            ``read_rows`` chunk ahead instead (see :meth:`feed_batches`).
        weight: an optional per-row weight column.
        encoders: column → string encoder spec (see :func:`jfx.core.encode_strings`).
        read_rows: rows per Parquet read (record batch).

    Example:
        >>> ds = Dataset.from_arrays({"x": np.arange(10.0), "y": np.arange(10) % 2}, label="y",
        ...                          batch_size=4, shuffle_buffer=0)
        >>> [b.features["x"].shape for b in ds]
        [(4,), (4,)]
    """

    def __init__(self, reader: Callable[[np.random.Generator | None], Iterable[pa.RecordBatch | pa.Table]],
                 schema: pa.Schema, num_rows: int, *, features: Sequence[str] | None = None,
                 label: str | None = None, batch_size: int = 32, shuffle_buffer: int | None = 10_000,
                 seed: int = 0, remainder: str = "drop", prefetch: int = 2, weight: str | None = None,
                 encoders: Mapping[str, Mapping] | None = None):
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
        if remainder not in _REMAINDERS:
            raise InvalidArgumentError(f"remainder must be one of {_REMAINDERS}, got {remainder!r}")
        if prefetch < 0:
            raise InvalidArgumentError(f"prefetch must be >= 0, got {prefetch}")
        self._reader = reader
        self.layout = _build_layout(schema, features, label, weight, encoders)
        self.num_rows = num_rows
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer or 0
        self.seed = seed
        self.remainder = remainder
        self.prefetch = prefetch
        # (start, stop) -> a reader of those rows only (set by the constructors that can
        # read a row range without reading the rest); used by :meth:`shard`.
        self._range_reader: Callable[[int, int], Callable[[np.random.Generator | None], Iterable[Any]]] | None = None
        self.shard_rows: tuple[int, ...] | None = None  # rows of every shard, when this is one

    # -- constructors -------------------------------------------------------------
    @classmethod
    def from_parquet(cls, files: str | Path | Sequence[str | Path], features: Sequence[str] | None = None,
                     label: str | None = None, *, read_rows: int = 65_536, **kwargs: Any) -> Dataset:
        """A dataset over Parquet files (e.g. ``split_files(examples, "train")``): local paths,
        or URIs on an object store (``s3://...``), read in batches as they are consumed."""
        from jfx import _storage as storage

        raw = [files] if isinstance(files, (str, Path)) else list(files)
        paths = [str(f) if storage.is_remote(str(f)) else str(Path(f)) for f in raw]
        if not paths:
            raise InvalidArgumentError("from_parquet needs at least one file")
        missing = [p for p in paths if not storage.is_remote(p) and not Path(p).is_file()]
        if missing:
            raise DataValidationError(f"Parquet files not found: {missing}")
        opened = []
        for p in paths:
            try:
                opened.append(storage.open_parquet(p))
            except FileNotFoundError:
                missing.append(p)
        if missing:
            raise DataValidationError(f"Parquet files not found: {missing}")
        schema = opened[0].schema_arrow
        metas = [pf.metadata for pf in opened]
        del opened
        num_rows = sum(m.num_rows for m in metas)
        wanted = [c for c in [*(features or schema.names), label, kwargs.get("weight")] if c is not None]
        columns = list(dict.fromkeys(c for c in wanted if c in schema.names))

        def read(rng: np.random.Generator | None) -> Iterator[pa.RecordBatch]:
            order = rng.permutation(len(paths)) if rng is not None else range(len(paths))
            for i in order:
                pf = storage.open_parquet(paths[i], metadata=metas[i])
                yield from storage.iter_parquet_batches(pf, read_rows, columns)

        # Every row group of every file, in order: (file, row group, first row, rows).
        groups = []
        first = 0
        for i, m in enumerate(metas):
            for g in range(m.num_row_groups):
                rows = m.row_group(g).num_rows
                groups.append((i, g, first, rows))
                first += rows

        def range_reader(start: int, stop: int) -> Callable[[np.random.Generator | None], Iterator[Any]]:
            # Only the row groups that hold rows of [start, stop) are read; a shard's
            # file order is shuffled per epoch as a whole dataset's is.
            pieces = [(i, g, max(start - f, 0), min(stop - f, n)) for i, g, f, n in groups
                      if f < stop and f + n > start]

            def read_range(rng: np.random.Generator | None) -> Iterator[pa.RecordBatch]:
                order = rng.permutation(len(pieces)) if rng is not None else range(len(pieces))
                for k in order:
                    i, g, lo, hi = pieces[k]
                    pf = storage.open_parquet(paths[i], metadata=metas[i])
                    at = 0
                    for batch in pf.iter_batches(batch_size=read_rows, row_groups=[g], columns=columns):
                        a, b = max(lo - at, 0), min(hi - at, batch.num_rows)
                        if a < b:
                            yield batch.slice(a, b - a)
                        at += batch.num_rows
                        if at >= hi:
                            break

            return read_range

        ds = cls(read, schema, num_rows, features=features, label=label, **kwargs)
        ds._range_reader = range_reader
        return ds

    @classmethod
    def from_table(cls, table: pa.Table, features: Sequence[str] | None = None, label: str | None = None,
                   *, read_rows: int = 65_536, **kwargs: Any) -> Dataset:
        """A dataset over an in-memory Arrow table."""

        def read(rng: np.random.Generator | None) -> Iterator[pa.RecordBatch]:
            yield from table.to_batches(max_chunksize=read_rows)

        def range_reader(start: int, stop: int) -> Callable[[np.random.Generator | None], Iterator[Any]]:
            def read_range(rng: np.random.Generator | None) -> Iterator[pa.RecordBatch]:
                yield from table.slice(start, stop - start).to_batches(max_chunksize=read_rows)

            return read_range

        ds = cls(read, table.schema, table.num_rows, features=features, label=label, **kwargs)
        ds._range_reader = range_reader
        return ds

    @classmethod
    def from_arrays(cls, columns: Mapping[str, Any], features: Sequence[str] | None = None,
                    label: str | None = None, **kwargs: Any) -> Dataset:
        """A dataset over a dict of equal-length NumPy arrays (2-D arrays become list columns)."""
        arrays = {}
        for k, v in columns.items():
            a = np.asarray(v)
            if a.ndim == 2:
                arrays[k] = pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])
            else:
                arrays[k] = pa.array(a)
        return cls.from_table(pa.table(arrays), features, label, **kwargs)

    # -- sizes ----------------------------------------------------------------------
    def num_batches(self, group: int = 1) -> int:
        """Batches per epoch (of ``batch_size * group`` rows)."""
        size = self.batch_size * group
        full, rest = divmod(self.num_rows, size)
        return full + (1 if rest and self.remainder == "pad" else 0)

    def __len__(self) -> int:
        return self.num_batches()

    # -- sharding over processes ------------------------------------------------------
    def shard(self, num_shards: int, index: int) -> Dataset:
        """Shard ``index`` of ``num_shards``: what one of ``num_shards`` processes training
        together reads (:func:`jfx.core.fit` with ``distributed=``).

        The rows are split into ``num_shards`` contiguous ranges of (within one) equal
        size, in file and row-group order; a shard reads only the Parquet row groups
        that hold its range. Its ``batch_size`` is this dataset's divided by
        ``num_shards``, so the shards' batches together make one global batch of
        ``batch_size`` rows. Shuffling (seeded by ``(seed, epoch)``) stays within a shard.
        :attr:`shard_rows` lists every shard's rows, which every process knows from the
        Parquet footers alone.

        Raises:
            InvalidArgumentError: ``batch_size`` is not a multiple of ``num_shards``, the
                index is out of range, or the dataset was not made by ``from_parquet``,
                ``from_table`` or ``from_arrays``.
        """
        import copy

        if num_shards < 1 or not 0 <= index < num_shards:
            raise InvalidArgumentError(f"shard {index} of {num_shards} does not exist")
        if self.batch_size % num_shards:
            raise InvalidArgumentError(f"batch_size {self.batch_size} is not divisible by the {num_shards} processes; "
                                       f"use a multiple of {num_shards}")
        if self._range_reader is None:
            raise InvalidArgumentError("this Dataset cannot be sharded over processes: build it with from_parquet, "
                                       "from_table or from_arrays")
        bounds = [self.num_rows * k // num_shards for k in range(num_shards + 1)]
        out = copy.copy(self)
        out._reader = self._range_reader(bounds[index], bounds[index + 1])  # noqa: SLF001 - a copy of self
        out._range_reader = None  # noqa: SLF001 - a copy of self
        out.num_rows = bounds[index + 1] - bounds[index]
        out.batch_size = self.batch_size // num_shards
        out.shard_rows = tuple(b - a for a, b in itertools.pairwise(bounds))
        return out

    def shard_batches(self, group: int = 1, *, most: bool = False) -> int:
        """Batches per epoch that every shard has (the fewest; with ``most``, the most
        any shard has); :meth:`num_batches` when this is not a shard."""
        if self.shard_rows is None:
            return self.num_batches(group)
        size = self.batch_size * group
        counts = [n // size + (1 if n % size and self.remainder == "pad" else 0) for n in self.shard_rows]
        return max(counts) if most else min(counts)

    @property
    def feature_shapes(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """feature → (dtype, shape without the batch axis) as fed to the model."""
        return self.layout.feature_shapes()

    # -- host pipeline ------------------------------------------------------------
    def _shuffled_rows(self, epoch: int) -> Iterator[tuple[_Rows, np.ndarray | None]]:
        """The epoch's rows as ``(rows, order)`` segments: ``rows`` taken in ``order``
        (all of them in turn when ``order`` is None), segment after segment.

        The order is applied lazily, batch by batch (:meth:`host_batches`), instead of
        copying every shuffled chunk whole: fewer large fresh allocations, whose page
        faults cost more than the copies themselves on a small VM."""
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle_buffer else None
        chunks = (_pack(b, self.layout) for b in self._reader(rng) if b.num_rows)
        if rng is None:
            for chunk in chunks:
                yield chunk, None
            return
        buffer: _Rows | None = None
        for chunk in chunks:
            pool = chunk if buffer is None else _concat([buffer, chunk])
            n = _n(pool)
            perm = rng.permutation(n)
            keep = min(self.shuffle_buffer, n)
            buffer = _take(pool, perm[n - keep:])
            if n > keep:
                yield pool, perm[: n - keep]
        if buffer is not None and _n(buffer):
            yield buffer, rng.permutation(_n(buffer))

    def host_batches(self, epoch: int = 0, *, start_batch: int = 0, group: int = 1) -> Iterator[_Rows]:
        """Packed NumPy batches ``(floats, ints, label, weight)`` of ``batch_size * group``
        rows, the first ``start_batch`` skipped; with ``group > 1`` each array is
        reshaped to ``(group, batch_size, ...)``. Used by the training engine."""
        return self._cut(self._shuffled_rows(epoch), start_batch, group)

    def _cut(self, segments: Iterable[tuple[_Rows, np.ndarray | None]], start_batch: int,
             group: int) -> Iterator[_Rows]:
        """Batches cut from ``(rows, order)`` segments; each batch gathered once."""
        size = self.batch_size * group
        pending: list[_Rows] = []  # the rows of a partial batch, in order
        have = 0
        index = 0

        def emit(rows: _Rows) -> _Rows:
            if group == 1:
                return rows
            return tuple(None if a is None else a.reshape(group, self.batch_size, *a.shape[1:]) for a in rows)

        def part(rows: _Rows, order: np.ndarray | None, start: int, stop: int) -> _Rows:
            return _take(rows, slice(start, stop) if order is None else order[start:stop])

        for rows, order in segments:
            m = _n(rows) if order is None else len(order)
            pos = 0
            while m - pos >= size - have:
                stop = pos + size - have
                if index >= start_batch:
                    yield emit(_concat([*pending, part(rows, order, pos, stop)]))
                index += 1
                pending, have, pos = [], 0, stop
            if pos < m:
                pending.append(part(rows, order, pos, m))
                have += m - pos
        if have and self.remainder == "pad" and index >= start_batch:
            yield emit(_pad(_concat(pending), size))

    def _check_mesh(self, mesh: Mesh) -> None:
        n_dev = mesh.devices.size
        if self.batch_size % n_dev:
            raise InvalidArgumentError(
                f"batch_size {self.batch_size} is not divisible by the {n_dev} local devices; "
                f"use a multiple of {n_dev}"
            )

    def device_batches(self, epoch: int = 0, *, start_batch: int = 0, group: int = 1,
                       mesh: Mesh | None = None) -> Iterator[_Rows]:
        """Like :meth:`host_batches`, but on the devices, sharded over ``mesh`` and
        prefetched on a background thread. Close the iterator to stop early."""
        mesh = mesh or data_mesh()
        self._check_mesh(mesh)
        sharding = batch_sharding(mesh, leading=1 if group > 1 else 0)

        def put(rows: _Rows) -> _Rows:
            # One device_put for the whole batch: its Python overhead (~100 us a call
            # here) is most of the cost of moving a small batch.
            present = [a for a in rows if a is not None]
            moved = iter(jax.device_put(present, sharding))
            return tuple(None if a is None else next(moved) for a in rows)

        host = self.host_batches(epoch, start_batch=start_batch, group=group)
        if not self.prefetch:
            return (put(r) for r in host)
        return _closing(_Prefetcher((put(r) for r in host), self.prefetch))

    def feed_batches(self, epoch: int = 0, *, start_batch: int = 0, group: int = 1,
                     mesh: Mesh | None = None) -> Iterator[_Rows]:
        """The batches for a jitted step whose ``in_shardings`` shard its batch
        arguments over ``mesh`` (as the training engine's steps do). Close the iterator
        to stop early.

        On accelerators these are :meth:`device_batches`: transferred ahead of use on
        the prefetch thread. On CPU devices, whose memory is host memory, they are the
        packed host NumPy batches of :meth:`host_batches`, which the jitted call shards
        and moves in its C++ dispatch path (~5 us an array, where ``jax.device_put``
        costs ~100 us of Python an array, CPU time taken from the step itself on a
        small machine). There the background thread (when ``prefetch`` > 0) reads,
        packs and shuffles the next ``read_rows`` chunk while the current one is cut
        into batches, so no thread hand-off happens per batch.
        """
        mesh = mesh or data_mesh()
        if not all(d.platform == "cpu" for d in mesh.devices.flat):
            return self.device_batches(epoch, start_batch=start_batch, group=group, mesh=mesh)
        self._check_mesh(mesh)
        return self._host_feed(epoch, start_batch, group)

    def _host_feed(self, epoch: int, start_batch: int, group: int) -> _HostFeed:
        return _HostFeed(self, epoch, start_batch, group)

    def epoch(self, epoch: int = 0, *, start_batch: int = 0) -> Iterator[Batch]:
        """The :class:`Batch` values of one epoch, on device and sharded."""
        for floats, ints, label, weight in self.device_batches(epoch, start_batch=start_batch):
            yield Batch(self.layout.unpack(floats, ints), label, weight)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)


class _HostFeed:
    """The packed host batches of one epoch (:meth:`Dataset.feed_batches` on CPU).

    The read-ahead thread (when ``prefetch`` > 0) starts when the feed is made, not at
    the first batch: the engine opens the first epoch's feed before it builds and
    compiles its step, so reading the first chunk overlaps the compile.
    """

    def __init__(self, data: Dataset, epoch: int, start_batch: int, group: int):
        segments: Iterator[tuple[_Rows, np.ndarray | None]] = data._shuffled_rows(epoch)  # noqa: SLF001
        self._prefetcher = _Prefetcher(segments, 1) if data.prefetch else None
        self._batches = data._cut(self._prefetcher or segments, start_batch, group)  # noqa: SLF001

    def __iter__(self) -> _HostFeed:
        return self

    def __next__(self) -> _Rows:
        return next(self._batches)

    def read_all(self) -> bool:
        """Whether the read-ahead thread has read the whole epoch (False without one)."""
        return self._prefetcher is not None and self._prefetcher.finished()

    def close(self) -> None:
        self._batches.close()  # type: ignore[attr-defined]  # a generator
        if self._prefetcher is not None:
            self._prefetcher.close()


def _closing(prefetcher: _Prefetcher) -> Iterator[Any]:
    try:
        yield from prefetcher
    finally:
        prefetcher.close()
