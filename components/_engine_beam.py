"""The Beam side of :mod:`jfx.components._engine` (imported only when Beam args are given).

The DoFn and CombineFns live at module level so every runner (the multi-process
DirectRunner, Dask workers) pickles them by reference to this module.
"""

from __future__ import annotations

import logging
import pickle
import uuid
from typing import Any

from jfx.components._beam import beam_options, quiet_beam_import, results_folder, worker_errors

quiet_beam_import()
import apache_beam as beam  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402

from jfx.components._engine import DEFAULT_BATCH_SIZE, Kernel, Piece, _Read  # noqa: E402 - after quiet_beam_import()

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
    """``(key, piece)`` → ``(key, (key, accumulator of every batch in the piece))``."""

    def __init__(self, kernels: dict[str, Kernel], reads: dict[str, _Read], batch_size: int) -> None:
        self.kernels = kernels
        self.reads = reads
        self.batch_size = batch_size

    def process(self, element: tuple[str, Piece]):
        key, piece = element
        kernel = self.kernels[key]
        acc = kernel.create()
        for batch in self.reads[key].batches(piece, self.batch_size):
            acc = kernel.add_batch(acc, batch)
        yield key, (key, acc)


def _write_result(element: tuple[str, Any], folder: str) -> None:
    key, (_, acc) = element
    with FileSystems.create(FileSystems.join(folder, f"{uuid.uuid4().hex}.pkl")) as fh:
        fh.write(pickle.dumps((key, acc), protocol=pickle.HIGHEST_PROTOCOL))


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
    elements = [(key, piece) for key, group in pieces.items() for piece in group]
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
        for match in FileSystems.match([FileSystems.join(folder, "*.pkl")])[0].metadata_list:
            with FileSystems.open(match.path) as fh:
                key, acc = pickle.loads(fh.read())
            accs[key].append(acc)
    return {key: kernels[key].merge(found) if found else kernels[key].create() for key, found in accs.items()}
