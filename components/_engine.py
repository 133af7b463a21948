"""One kernel, two engines: run a mergeable kernel over Parquet or CSV files.

A *kernel* is any object with four functions (STYLE.md item 5)::

    create() -> acc                       # an empty accumulator
    add_batch(acc, batch: pa.RecordBatch) -> acc
    merge(accs: list[acc]) -> acc
    finish(acc) -> result

The accumulator is small (counters, NumPy arrays, sketches) and picklable; the kernel
object itself is picklable by reference (a module-level class), so Beam, its
multi-process DirectRunner and Dask workers can import it.

A kernel may also have any of three optional hooks, which both engines honour:

* ``bind(pieces) -> kernel``: the kernel for one group of pieces (one split), made
  before anything is read, e.g. from what Parquet footers say about the columns;
* ``follow_up(acc) -> kernel | None``: a second pass over the same group, for what the
  first could not finish exactly (its ``read_columns``, when it has them, are the only
  columns read; a file without one of them is read without it);
* ``complete(result, follow_up_result) -> result``: fold the second pass in.

A kernel that needs to know where its rows are (e.g. to draw the same bootstrap weights
for a row whatever the engine or number of workers) has ``add_batch_at(acc, batch,
piece_index, first_row) -> acc`` as well: both engines then call it instead of
``add_batch``, with the piece's index in its group (the order :func:`plan_pieces` gives)
and the offset of the batch's first row in that piece. ``(piece_index, first_row + i)``
names row ``i`` of the batch the same way on every engine, worker count and batch size.

A kernel with a ``follow_up`` may name, with ``follow_up_columns(schema) -> names``,
the columns its second pass could read: the in-process engine then keeps a copy of
those columns from CSV files as it parses them (an Arrow stream file in a temporary
folder, removed at the end), and the second pass reads that instead of parsing the CSV
again. On Beam the second pass reads the files again, on the workers.

:func:`run_kernel` runs a kernel either

* **in-process** (``beam_pipeline_args=None``, the default): one reader thread streams
  RecordBatches (pyarrow decodes columns on its own thread pool) into a bounded queue,
  and one worker thread per core folds them into its own accumulator; the workers'
  accumulators are merged at the end. pyarrow and NumPy release the GIL, so the workers
  run in parallel. Row groups of objects on a store are read ahead, two at a time
  (:data:`REMOTE_READ_AHEAD`), so a request's latency does not stall the workers; the
  batches still go out in the plan's order; or
* **on Beam** (``beam_pipeline_args`` given): ``Create(pieces) | Reshuffle |
  ParDo(read a piece and fold its batches into one accumulator) | CombinePerKey(merge
  accumulators)``. A *piece* is one Parquet row group or one CSV file. Only
  accumulators cross a shuffle, never RecordBatches: Beam's DaskRunner does no
  combiner lifting, so a CombineFn fed RecordBatches would ship every batch through a
  GroupByKey there (NOTES.md: 0.4–0.8 M rows/s). The accumulators are merged by the
  kernel's own ``merge`` and ``finish`` runs here, in the caller.

Both engines give the same answers: exact fields are identical, sketch fields agree
within the sketch's error.

Example:
    >>> from jfx.components._statistics import StatisticsKernel
    >>> stats = run_kernel(StatisticsKernel(), ["data/part-00000.parquet"])  # doctest: +SKIP
    >>> per_split = run_kernel(StatisticsKernel(),                           # doctest: +SKIP
    ...                        {"train": train_files, "eval": eval_files},
    ...                        beam_pipeline_args=["--runner=DirectRunner"])
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import functools
import itertools
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv
from jfx import _storage as storage
from jfx.errors import DataValidationError, InvalidArgumentError

__all__ = [
    "Kernel",
    "Source",
    "Piece",
    "run_kernel",
    "plan_pieces",
    "read_piece",
    "DEFAULT_BATCH_SIZE",
    "fold_batch",
    "ENGINE_IN_PROCESS",
    "ENGINE_BEAM",
]

DEFAULT_BATCH_SIZE = 131_072
ENGINE_IN_PROCESS = "in-process"
ENGINE_BEAM = "beam"
FORMATS = ("parquet", "csv", "arrow")  # arrow: an Arrow IPC stream file (the engine's own copies)
_CSV_BLOCK_SIZE = 4 << 20
_CSV_MAX_DICTIONARY = 1 << 16


Acc = TypeVar("Acc")
Out = TypeVar("Out", covariant=True)


class Kernel(Protocol[Acc, Out]):
    """What :func:`run_kernel` needs of a kernel: accumulators of type ``Acc``, a result ``Out``.

    The contract both engines rely on (a test checks it for every kernel):

    * ``create()`` returns a new empty accumulator on every call.
    * ``add_batch(acc, batch)`` may mutate ``acc`` and return it: an engine never uses
      an accumulator again after passing it in.
    * ``merge(accs)`` must not mutate any of ``accs`` and returns an accumulator that
      shares no mutable state with them: Beam may merge one accumulator into several
      results, retry a merge, or merge merged results again.
    * Merging the accumulators of any split of the batches (empty ones and nested
      merges included) equals one pass over them all, exactly for exact fields and
      within the sketch's error for sketches.
    """

    def create(self) -> Acc: ...

    def add_batch(self, acc: Acc, batch: pa.RecordBatch) -> Acc: ...

    def merge(self, accs: list[Acc]) -> Acc: ...

    def finish(self, acc: Acc) -> Out: ...


def fold_batch(kernel: Any, acc: Any, batch: pa.RecordBatch, piece_index: int, first_row: int) -> Any:
    """``kernel.add_batch_at(acc, batch, piece_index, first_row)`` when the kernel has it, else
    ``kernel.add_batch(acc, batch)`` (what both engines call for each batch)."""
    at = getattr(kernel, "add_batch_at", None)
    if at is not None:
        return at(acc, batch, piece_index, first_row)
    return kernel.add_batch(acc, batch)


@dataclass(frozen=True)
class Source:
    """One input file and its format (``parquet`` or ``csv``; by default from the suffix)."""

    path: str
    format: str = "parquet"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidArgumentError(f"source {self.path}: format {self.format!r} is not one of {FORMATS}")

    @classmethod
    def of(cls, value: Source | str | os.PathLike) -> Source:
        if isinstance(value, Source):
            return value
        path = str(value)
        return cls(path, "csv" if path.lower().endswith((".csv", ".csv.gz")) else "parquet")


@dataclass(frozen=True)
class Piece:
    """One unit of work: a Parquet row group, or a whole CSV file (``row_group=None``)."""

    source: Source
    row_group: int | None = None


def plan_pieces(sources: Sequence[Source | str | os.PathLike]) -> list[Piece]:
    """Split sources into pieces; reads every Parquet footer, so a corrupt file fails here.

    Raises:
        DataValidationError: a file is missing or is not a readable Parquet file.
    """
    pieces: list[Piece] = []
    for raw in sources:
        source = Source.of(raw)
        remote = storage.is_remote(source.path)
        if not (remote or Path(source.path).is_file()) or (
                remote and source.format != "parquet" and not storage.exists(source.path)):
            raise DataValidationError(f"{source.path}: no such file")
        if source.format in ("csv", "arrow"):
            pieces.append(Piece(source))
            continue
        try:
            meta = storage.open_parquet(source.path).metadata
        except FileNotFoundError:  # on a store: one request finds out
            raise DataValidationError(f"{source.path}: no such file") from None
        except (pa.ArrowException, OSError) as err:
            raise DataValidationError(f"{source.path}: not a readable Parquet file ({err})") from err
        pieces.extend(Piece(source, i) for i in range(meta.num_row_groups))
    return pieces


def read_piece(piece: Piece, *, columns: Sequence[str] | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
               use_threads: bool = True, dictionary_strings: bool = False,
               skip_missing_columns: bool = False) -> Iterator[pa.RecordBatch]:
    """The RecordBatches of one piece. In CSV files an empty field is a missing value.

    Args:
        dictionary_strings: return string columns dictionary-encoded (Parquet stores them
            so; decoding to plain strings is then skipped). A kernel asks for this with a
            true ``read_strings_as_dictionary`` attribute.
        skip_missing_columns: read the file without those of ``columns`` it lacks
            (a CSV file gives them as all-null columns) instead of failing.

    Raises:
        DataValidationError: the file cannot be read or parsed (the message names it).
    """
    path = piece.source.path
    try:
        if piece.source.format == "csv":
            convert = pacsv.ConvertOptions(include_columns=list(columns) if columns else None,
                                           include_missing_columns=skip_missing_columns,
                                           strings_can_be_null=True,
                                           auto_dict_encode=dictionary_strings,
                                           auto_dict_max_cardinality=_CSV_MAX_DICTIONARY)
            read = pacsv.ReadOptions(use_threads=use_threads, block_size=_CSV_BLOCK_SIZE)
            if storage.is_remote(path):
                with storage.input_stream(path) as stream:
                    yield from pacsv.open_csv(stream, read_options=read, convert_options=convert)
            else:
                yield from pacsv.open_csv(path, read_options=read, convert_options=convert)
        elif piece.source.format == "arrow":
            with (storage.input_stream(path) if storage.is_remote(path) else pa.memory_map(path)) as source:
                for batch in pa.ipc.open_stream(source):
                    if columns:
                        have = set(batch.schema.names)
                        batch = batch.select([c for c in columns if c in have or not skip_missing_columns])
                    yield batch
        else:
            pf = storage.open_parquet(path)
            if columns and skip_missing_columns:
                have = set(pf.schema_arrow.names)
                columns = [c for c in columns if c in have]
                if not columns:
                    return
            if dictionary_strings:
                strings = [f.name for f in pf.schema_arrow
                           if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
                if strings:
                    pf = storage.open_parquet(path, read_dictionary=strings, metadata=pf.metadata)
            yield from pf.iter_batches(batch_size=batch_size, row_groups=[piece.row_group],
                                       columns=list(columns) if columns else None, use_threads=use_threads)
    except (pa.ArrowException, OSError) as err:
        where = f" row group {piece.row_group}" if piece.row_group is not None else ""
        raise DataValidationError(f"{path}{where}: cannot read {piece.source.format} data ({err})") from err


def run_kernel(kernel: Kernel, sources: Sequence[Any] | Mapping[str, Sequence[Any]], *,
               beam_pipeline_args: list[str] | None = None, columns: Sequence[str] | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int | None = None) -> Any:
    """Run ``kernel`` over files and return ``kernel.finish`` of everything.

    Args:
        kernel: a kernel (see the module docstring).
        sources: file paths (or :class:`Source`); or a mapping name → paths, e.g. one entry
            per split, which runs every group in one pass (one Beam pipeline) and returns
            a mapping name → result.
        beam_pipeline_args: ``None`` for the in-process engine, else Beam's options, e.g.
            ``["--runner=DirectRunner", "--direct_running_mode=multi_processing"]``.
        columns: read only these columns (default: all).
        batch_size: rows per RecordBatch read from Parquet.
        num_workers: in-process worker threads (default: the CPU count).

    Raises:
        DataValidationError: a file is missing, corrupt or unreadable; the message names it.
    """
    # Parquet footers on an object store are read once per file, not once per open
    with storage.cached_footers():
        return _run_kernel(kernel, sources, beam_pipeline_args, columns, batch_size, num_workers)


def _run_kernel(kernel: Kernel, sources: Sequence[Any] | Mapping[str, Sequence[Any]],
                beam_pipeline_args: list[str] | None, columns: Sequence[str] | None, batch_size: int,
                num_workers: int | None) -> Any:
    grouped = isinstance(sources, Mapping)
    groups = {str(k): list(v) for k, v in sources.items()} if isinstance(sources, Mapping) else {"": list(sources)}
    pieces = {key: plan_pieces(files) for key, files in groups.items()}
    bind = getattr(kernel, "bind", None)
    kernels = {key: bind(group) if bind is not None else kernel for key, group in pieces.items()}
    spill_dir = None
    if beam_pipeline_args is None and hasattr(kernel, "follow_up_columns") and any(
            p.source.format == "csv" for group in pieces.values() for p in group):
        spill_dir = tempfile.mkdtemp(prefix="jfx-engine-")
    copies: dict[Piece, Piece | None] = {}

    def run(kernels: dict[str, Kernel], pieces: dict[str, list[Piece]], spill: str | None = None) -> dict[str, Any]:
        reads = {key: _Read(k, columns) for key, k in kernels.items()}
        if beam_pipeline_args is None:
            return _run_in_process(kernels, pieces, reads, batch_size, num_workers or os.cpu_count() or 1,
                                   spill, copies)
        from jfx.components._engine_beam import run_on_beam

        return run_on_beam(kernels, pieces, list(beam_pipeline_args), reads, batch_size)

    try:
        accs = run(kernels, pieces, spill_dir)
        results = {key: kernels[key].finish(accs[key]) for key in groups}
        follow = {}
        for key, k in kernels.items():
            hook = getattr(k, "follow_up", None)
            second = hook(accs[key]) if hook is not None else None
            if second is not None:
                follow[key] = second
        if follow:
            # A CSV piece with a copy is read from the copy; one without rows (None) not at all.
            again = run(follow, {key: [c for c in (copies.get(p, p) for p in pieces[key]) if c is not None]
                                 for key in follow})
            for key, second in follow.items():
                hooked: Any = kernels[key]  # a kernel with follow_up has complete
                results[key] = hooked.complete(results[key], second.finish(again[key]))
    finally:
        if spill_dir is not None:
            shutil.rmtree(spill_dir, ignore_errors=True)
    return results if grouped else results[""]


class _Copy:
    """Some columns of one CSV piece, written as an Arrow stream file while it is parsed.

    A write error only abandons the copy (the second pass then parses the CSV again).
    """

    def __init__(self, path: str, columns_of: Any) -> None:
        self.path = path
        self.columns_of = columns_of
        self.names: list[str] | None = None
        self.writer: Any = None
        self.failed = False

    def write(self, batch: pa.RecordBatch) -> None:
        if self.failed:
            return
        try:
            if self.names is None:
                self.names = [n for n in self.columns_of(batch.schema) if n in batch.schema.names]
            # Plain arrays: each CSV block has its own dictionaries, which a stream file can't hold.
            arrays = [_plain(batch.column(n)) for n in self.names]
            part = pa.record_batch(arrays, names=self.names)
            if self.writer is None:
                self.writer = pa.ipc.new_stream(self.path, part.schema)
            self.writer.write_batch(part)
        except (OSError, pa.ArrowException):
            self.failed = True
            self.close()

    def close(self) -> Piece | None:
        """The copy as a piece (``None``: the piece had no rows, or :attr:`failed`)."""
        if self.writer is not None:
            try:
                self.writer.close()
            except (OSError, pa.ArrowException):
                self.failed = True
            self.writer = None
        if self.failed:
            return None
        return Piece(Source(self.path, "arrow")) if self.names is not None else None


def _plain(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


class _Read:
    """How the engines read the pieces of one group for one kernel (picklable, for Beam)."""

    def __init__(self, kernel: Kernel, columns: Sequence[str] | None) -> None:
        wanted = getattr(kernel, "read_columns", None)
        self.columns = list(wanted if wanted is not None else columns or []) or None
        self.dictionary_strings = bool(getattr(kernel, "read_strings_as_dictionary", False))
        # Columns a kernel asks for itself are a wish (a split's files may differ); the
        # caller's are a requirement, and a file without one is an error.
        self.skip_missing_columns = wanted is not None

    def batches(self, piece: Piece, batch_size: int, use_threads: bool = True) -> Iterator[pa.RecordBatch]:
        return read_piece(piece, columns=self.columns, batch_size=batch_size, use_threads=use_threads,
                          dictionary_strings=self.dictionary_strings,
                          skip_missing_columns=self.skip_missing_columns)


_DONE = object()
# Remote Parquet row groups read ahead of the one being handed out: each is one request
# whose latency would otherwise stall the workers while the reader waits on it
# (tests/benchmarks/bench_s3_statistics.py). Memory: this many more decoded row groups.
REMOTE_READ_AHEAD = 2


class _Prefetch:
    """The batches of pieces in plan order; remote Parquet pieces are read ahead in threads.

    Only what is read ahead changes: the reader still hands out every piece's batches in
    the plan's order, so batch ``i`` still goes to worker ``i % n`` and results stay
    byte-identical. A piece read ahead is held whole (one row group, bounded); local
    pieces and CSV files (one piece per file, unbounded) stream as before. A failed read
    raises when its piece's turn comes, as it would have unread.
    """

    def __init__(self, reads: dict[str, _Read], batch_size: int, plan: list[tuple[str, Piece]],
                 depth: int = REMOTE_READ_AHEAD) -> None:
        self._reads = reads
        self._batch_size = batch_size
        self._depth = depth
        # the remote row groups, in the order the reader will ask for them
        self._ahead = collections.deque((key, piece) for key, piece in plan
                                        if piece.row_group is not None and storage.is_remote(piece.source.path))
        self._pending: collections.deque[tuple[tuple[str, Piece], Any]] = collections.deque()
        self._pool: Any = None
        if self._ahead and depth > 0:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="jfx-engine-prefetch")

    def _read_whole(self, key: str, piece: Piece) -> list[pa.RecordBatch]:
        return list(self._reads[key].batches(piece, self._batch_size))

    def _fill(self) -> None:
        while self._ahead and len(self._pending) <= self._depth:
            item = self._ahead.popleft()
            self._pending.append((item, self._pool.submit(self._read_whole, *item)))

    def batches(self, key: str, piece: Piece) -> Iterator[pa.RecordBatch]:
        """The batches of ``piece`` (the next piece of the plan)."""
        if self._pool is None or piece.row_group is None or not storage.is_remote(piece.source.path):
            yield from self._reads[key].batches(piece, self._batch_size)
            return
        self._fill()
        if not self._pending or self._pending[0][0] != (key, piece):  # not the plan's next: read it as it comes
            yield from self._reads[key].batches(piece, self._batch_size)
            return
        _, future = self._pending.popleft()
        self._fill()
        yield from future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()


# glibc's M_MMAP_THRESHOLD, and its initial value
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024


@functools.cache
def _fix_mmap_threshold() -> None:
    """Keep glibc's mmap threshold at its initial 128 KiB in this process.

    glibc raises the threshold (up to 32 MiB) each time a large block is freed; after
    that, the large NumPy buffers of the worker threads come from their heaps and stay
    in the process's memory when freed, so peak memory follows the allocator's history
    rather than what the accumulators hold. With a fixed threshold they are mapped and
    handed back. Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc: no mallopt


def _run_in_process(kernels: dict[str, Kernel], pieces: dict[str, list[Piece]], reads: dict[str, _Read],
                    batch_size: int, num_workers: int, spill: str | None = None,
                    copies: dict[Piece, Piece | None] | None = None) -> dict[str, Any]:
    """Run each key's kernel over its pieces in threads; return key → merged accumulator.

    With ``spill`` (a folder), CSV pieces are also copied there (see :class:`_Copy`) and
    ``copies`` maps each to its copy.
    """
    _fix_mmap_threshold()
    # Batch i goes to worker i % n and the workers' accumulators merge in worker order, so
    # a rerun over the same files gives byte-identical results (downstream caches hold).
    queues: list[queue.Queue] = [queue.Queue(maxsize=2) for _ in range(num_workers)]
    # the running component's context, read here: the reader's thread has none of its own.
    # Each piece starts with a check, so Ctrl-C stops every kernel-based component there.
    from jfx.pipelines._context import current_context

    running = current_context()
    names = itertools.count()
    stop = threading.Event()
    errors: list[BaseException] = []
    partials: list[dict[str, Any]] = [{} for _ in range(num_workers)]

    def put(q: queue.Queue, item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        ahead = _Prefetch(reads, batch_size, [(key, piece) for key, group in pieces.items() for piece in group])
        try:
            i = 0
            for key, group in pieces.items():
                columns_of = getattr(kernels[key], "follow_up_columns", None)
                for index, piece in enumerate(group):
                    if running is not None:
                        running.check_cancelled()
                    copy = None
                    first_row = 0
                    if spill is not None and columns_of is not None and piece.source.format == "csv":
                        copy = _Copy(os.path.join(spill, f"{next(names)}.arrows"), columns_of)
                    for batch in ahead.batches(key, piece):
                        if copy is not None:
                            copy.write(batch)
                        if not put(queues[i % num_workers], (key, batch, index, first_row)):
                            return
                        i += 1
                        first_row += batch.num_rows
                    if copy is not None and copies is not None:
                        done = copy.close()
                        copies[piece] = piece if copy.failed else done
        except BaseException as err:  # noqa: BLE001 - handed to the caller below
            errors.append(err)
            stop.set()
        finally:
            ahead.close()
            for q in queues:
                put(q, _DONE)

    def worker(index: int) -> None:
        accs = partials[index]
        q = queues[index]
        try:
            while not stop.is_set():
                try:
                    item = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                key, batch, index, first_row = item
                acc = accs.get(key)
                kernel = kernels[key]
                accs[key] = fold_batch(kernel, kernel.create() if acc is None else acc, batch, index, first_row)
        except BaseException as err:  # noqa: BLE001 - handed to the caller, which raises it
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=reader, name="jfx-engine-reader", daemon=True)]
    threads += [threading.Thread(target=worker, args=(i,), name=f"jfx-engine-{i}", daemon=True)
                for i in range(num_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {key: kernels[key].merge([p[key] for p in partials if key in p] or [kernels[key].create()])
            for key in pieces}
