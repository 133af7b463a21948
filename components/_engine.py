"""One kernel, two engines: run a mergeable kernel over Parquet or CSV files.

A *kernel* is any object with four functions (STYLE.md item 5)::

    create() -> acc                       # an empty accumulator
    add_batch(acc, batch: pa.RecordBatch) -> acc
    merge(accs: list[acc]) -> acc
    finish(acc) -> result

The accumulator is small (counters, NumPy arrays, sketches) and picklable; the kernel
object itself is picklable by reference (a module-level class), so Beam, its
multi-process DirectRunner and Dask workers can import it.

:func:`run_kernel` runs a kernel either

* **in-process** (``beam_pipeline_args=None``, the default): one reader thread streams
  RecordBatches (pyarrow decodes columns on its own thread pool) into a bounded queue,
  and one worker thread per core folds them into its own accumulator; the workers'
  accumulators are merged at the end. pyarrow and NumPy release the GIL, so the workers
  run in parallel; or
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

import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jfx.errors import DataValidationError, InvalidArgumentError

__all__ = [
    "Kernel",
    "Source",
    "Piece",
    "run_kernel",
    "plan_pieces",
    "read_piece",
    "DEFAULT_BATCH_SIZE",
    "ENGINE_IN_PROCESS",
    "ENGINE_BEAM",
]

DEFAULT_BATCH_SIZE = 131_072
ENGINE_IN_PROCESS = "in-process"
ENGINE_BEAM = "beam"
FORMATS = ("parquet", "csv")
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
        if not Path(source.path).is_file():
            raise DataValidationError(f"{source.path}: no such file")
        if source.format == "csv":
            pieces.append(Piece(source))
            continue
        try:
            meta = pq.ParquetFile(source.path).metadata
        except (pa.ArrowException, OSError) as err:
            raise DataValidationError(f"{source.path}: not a readable Parquet file ({err})") from err
        pieces.extend(Piece(source, i) for i in range(meta.num_row_groups))
    return pieces


def read_piece(piece: Piece, *, columns: Sequence[str] | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
               use_threads: bool = True, dictionary_strings: bool = False) -> Iterator[pa.RecordBatch]:
    """The RecordBatches of one piece. In CSV files an empty field is a missing value.

    Args:
        dictionary_strings: return string columns dictionary-encoded (Parquet stores them
            so; decoding to plain strings is then skipped). A kernel asks for this with a
            true ``read_strings_as_dictionary`` attribute.

    Raises:
        DataValidationError: the file cannot be read or parsed (the message names it).
    """
    path = piece.source.path
    try:
        if piece.source.format == "csv":
            convert = pacsv.ConvertOptions(include_columns=list(columns) if columns else None,
                                           strings_can_be_null=True,
                                           auto_dict_encode=dictionary_strings,
                                           auto_dict_max_cardinality=_CSV_MAX_DICTIONARY)
            read = pacsv.ReadOptions(use_threads=use_threads, block_size=_CSV_BLOCK_SIZE)
            yield from pacsv.open_csv(path, read_options=read, convert_options=convert)
        else:
            pf = pq.ParquetFile(path)
            if dictionary_strings:
                strings = [f.name for f in pf.schema_arrow
                           if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
                if strings:
                    pf = pq.ParquetFile(path, read_dictionary=strings)
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
    grouped = isinstance(sources, Mapping)
    groups = {str(k): list(v) for k, v in sources.items()} if grouped else {"": list(sources)}
    pieces = {key: plan_pieces(files) for key, files in groups.items()}
    if beam_pipeline_args is None:
        accs = _run_in_process(kernel, pieces, columns, batch_size, num_workers or os.cpu_count() or 1)
    else:
        from jfx.components._engine_beam import run_on_beam

        accs = run_on_beam(kernel, pieces, list(beam_pipeline_args), columns, batch_size)
    results = {key: kernel.finish(accs[key]) for key in groups}
    return results if grouped else results[""]


_DONE = object()


def _run_in_process(kernel: Kernel, pieces: dict[str, list[Piece]], columns: Sequence[str] | None,
                    batch_size: int, num_workers: int) -> dict[str, Any]:
    dictionary = bool(getattr(kernel, "read_strings_as_dictionary", False))
    # Batch i goes to worker i % n and the workers' accumulators merge in worker order, so
    # a rerun over the same files gives byte-identical results (downstream caches hold).
    queues: list[queue.Queue] = [queue.Queue(maxsize=2) for _ in range(num_workers)]
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
        try:
            i = 0
            for key, group in pieces.items():
                for piece in group:
                    for batch in read_piece(piece, columns=columns, batch_size=batch_size,
                                            dictionary_strings=dictionary):
                        if not put(queues[i % num_workers], (key, batch)):
                            return
                        i += 1
        except BaseException as err:  # handed to the caller below
            errors.append(err)
            stop.set()
        finally:
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
                key, batch = item
                acc = accs.get(key)
                accs[key] = kernel.add_batch(kernel.create() if acc is None else acc, batch)
        except BaseException as err:
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
    return {key: kernel.merge([p[key] for p in partials if key in p] or [kernel.create()]) for key in pieces}
