"""The Beam side of :mod:`jfx.components._engine` (imported only when Beam args are given).

The DoFn and CombineFns live at module level so every runner (the multi-process
DirectRunner, Dask workers) pickles them by reference to this module.

Workers share no filesystem with the driver (see :mod:`jfx.components._beam`): a piece
on an object store is read on the worker through :mod:`jfx._storage` (a Parquet row
group by byte ranges of the object; a CSV or Arrow file streamed into a worker-local
temporary file first, since it is parsed whole), and the merged accumulators come back
through a :func:`~jfx.components._beam.results_folder` the workers can write (an
object-store prefix when the pipeline root is one). A group whose accumulator did not
come back fails the run: a result computed from part of the data is never returned.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jfx import _storage as storage
from jfx.components._beam import (
    beam_options,
    quiet_beam_import,
    read_results,
    results_folder,
    worker_errors,
    write_result,
)
from jfx.errors import DataValidationError

quiet_beam_import()
import apache_beam as beam  # noqa: E402

from jfx.components._engine import DEFAULT_BATCH_SIZE, Kernel, Piece, Source, _Read, fold_batch  # noqa: E402 - after quiet_beam_import()

__all__ = ["AccumulatorCombineFn", "ReadAndAccumulate", "run_on_beam"]

_LOG = logging.getLogger(__name__)
_DASK_RUNNER = "DaskRunner"


class AccumulatorCombineFn(beam.CombineFn):
    """Merges ``(key, accumulator)`` values with the key's kernel; outputs the merged pair.

    The key travels with each accumulator because a CombineFn is not told its key, and
    each group may have its own kernel (see ``bind`` in :mod:`jfx.components._engine`).
    ``None`` is the empty accumulator.
    """

    def __init__(self, kernels: dict[str, Kernel]) -> None:
        self.kernels = kernels

    def _merge(self, parts: list[Any]) -> Any:
        parts = [p for p in parts if p is not None]
        if len(parts) < 2:
            return parts[0] if parts else None
        key = parts[0][0]
        return key, self.kernels[key].merge([acc for _, acc in parts])

    def create_accumulator(self) -> Any:
        return None

    def add_input(self, acc: Any, other: Any) -> Any:
        return self._merge([acc, other])

    def add_inputs(self, acc: Any, others: Any) -> Any:
        return self._merge([acc, *others])

    def merge_accumulators(self, accs: Any) -> Any:
        return self._merge(list(accs))

    def extract_output(self, acc: Any) -> Any:
        return acc


class ReadAndAccumulate(beam.DoFn):
    """``(key, piece, index)`` → ``(key, (key, accumulator of every batch in the piece))``;
    ``index`` is the piece's position in its group (see ``add_batch_at`` in the engine)."""

    def __init__(self, kernels: dict[str, Kernel], reads: dict[str, _Read], batch_size: int) -> None:
        self.kernels = kernels
        self.reads = reads
        self.batch_size = batch_size

    def process(self, element: tuple[str, Piece, int]):
        key, piece, index = element
        kernel = self.kernels[key]
        acc = kernel.create()
        first_row = 0
        for batch in piece_batches(self.reads[key], piece, self.batch_size):
            acc = fold_batch(kernel, acc, batch, index, first_row)
            first_row += batch.num_rows
        yield key, (key, acc)


def piece_batches(read: _Read, piece: Piece, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The RecordBatches of ``piece`` as ``read`` wants them, from local disk or an object store."""
    path = piece.source.path
    if not storage.is_remote(path):
        yield from read.batches(piece, batch_size)
        return
    if piece.source.format == "parquet":
        yield from _remote_parquet(read, piece, batch_size)
        return
    # CSV and Arrow stream files are parsed whole: a worker-local copy, removed after
    scratch = tempfile.mkdtemp(prefix="jfx-piece-")
    try:
        local = os.path.join(scratch, PurePosixPath(path).name)
        try:
            with storage.open_uri(path, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except OSError as err:
            raise DataValidationError(f"{path}: cannot read {piece.source.format} data ({err})") from err
        yield from read.batches(replace(piece, source=Source(local, piece.source.format)), batch_size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remote_parquet(read: _Read, piece: Piece, batch_size: int) -> Iterator[pa.RecordBatch]:
    """One row group of a Parquet object, read by byte ranges (the footer, then its column chunks)."""
    path = piece.source.path
    columns = read.columns
    try:
        with storage.open_uri(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            if columns and read.skip_missing_columns:
                have = set(pf.schema_arrow.names)
                columns = [c for c in columns if c in have]
                if not columns:
                    return
            if read.dictionary_strings:
                strings = [f.name for f in pf.schema_arrow
                           if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
                if strings:
                    pf = pq.ParquetFile(fh, read_dictionary=strings, metadata=pf.metadata)
            yield from pf.iter_batches(batch_size=batch_size, row_groups=[piece.row_group],
                                       columns=list(columns) if columns else None)
    except (pa.ArrowException, OSError) as err:
        raise DataValidationError(f"{path} row group {piece.row_group}: cannot read parquet data ({err})") from err


def _write_result(element: tuple[str, Any], folder: str) -> None:
    key, (_, acc) = element
    write_result(folder, pickle.dumps((key, acc), protocol=pickle.HIGHEST_PROTOCOL))


def _with_dask_partitions(args: list[str], n: int) -> list[str]:
    """Give the DaskRunner one bag partition per piece unless the args choose.

    Its default (128 elements per partition) would put every piece on one worker.
    """
    if not any(_DASK_RUNNER in a for a in args if a.startswith("--runner")):
        return args
    if any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args):
        return args
    return [*args, f"--dask_npartitions={max(1, n)}"]


def run_on_beam(kernels: dict[str, Kernel], pieces: dict[str, list[Piece]], args: list[str],
                reads: dict[str, _Read], batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """Run each key's kernel over its pieces on Beam; return key → merged accumulator."""
    elements = [(key, piece, index) for key, group in pieces.items() for index, piece in enumerate(group)]
    options = beam_options(_with_dask_partitions(args, len(elements)))
    with worker_errors(), results_folder(options, "jfx-beam-") as folder:
        if elements:
            p = beam.Pipeline(options=options)
            _ = (
                p
                | "Pieces" >> beam.Create(elements)
                | "Spread" >> beam.Reshuffle()
                | "ReadAndAccumulate" >> beam.ParDo(ReadAndAccumulate(kernels, reads, batch_size))
                | "Merge" >> beam.CombinePerKey(AccumulatorCombineFn(kernels))
                | "Write" >> beam.Map(_write_result, folder)
            )
            result = p.run()
            try:
                result.wait_until_finish()
            finally:
                # The DaskRunner opens a dask Client per run and leaves it open; close it, or
                # it keeps reconnecting (and logging) after the cluster goes away.
                client = getattr(result, "client", None)
                if client is not None:
                    client.close()
        accs: dict[str, list[Any]] = {key: [] for key in pieces}
        for data in read_results(folder):
            key, acc = pickle.loads(data)
            accs[key].append(acc)
        lost = sorted(key for key, group in pieces.items() if group and not accs[key])
        if lost:
            raise DataValidationError(
                f"the Beam workers' results for {', '.join(repr(k) for k in lost)} did not reach {folder}: "
                "workers on other machines need a --temp_location they can write (e.g. s3://bucket/tmp) "
                "or an object-store pipeline root")
    return {key: kernels[key].merge(found) if found else kernels[key].create() for key, found in accs.items()}
