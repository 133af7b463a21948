"""The Beam side of :mod:`jfx.components._engine` (imported only when Beam args are given).

The DoFn and CombineFns live at module level so every runner (the multi-process
DirectRunner, Dask workers) pickles them by reference to this module.
"""

from __future__ import annotations

import logging
import pickle
import uuid
from collections.abc import Sequence
from typing import Any

from jfx.components._beam import beam_options, quiet_beam_import, results_folder, worker_errors

quiet_beam_import()
import apache_beam as beam  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402

from jfx.components._engine import DEFAULT_BATCH_SIZE, Kernel, Piece, read_piece

__all__ = ["AccumulatorCombineFn", "ReadAndAccumulate", "run_on_beam"]

_LOG = logging.getLogger(__name__)
_DASK_RUNNER = "DaskRunner"


class AccumulatorCombineFn(beam.CombineFn):
    """Merges accumulators (the inputs are accumulators already); outputs the merged one."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def create_accumulator(self) -> Any:
        return self.kernel.create()

    def add_input(self, acc: Any, other: Any) -> Any:
        return self.kernel.merge([acc, other])

    def add_inputs(self, acc: Any, others: Any) -> Any:
        return self.kernel.merge([acc, *others])

    def merge_accumulators(self, accs: Any) -> Any:
        return self.kernel.merge(list(accs))

    def extract_output(self, acc: Any) -> Any:
        return acc


class ReadAndAccumulate(beam.DoFn):
    """``(key, piece)`` → ``(key, accumulator of every batch in the piece)``."""

    def __init__(self, kernel: Kernel, columns: Sequence[str] | None, batch_size: int) -> None:
        self.kernel = kernel
        self.columns = list(columns) if columns else None
        self.batch_size = batch_size

    def process(self, element: tuple[str, Piece]):
        key, piece = element
        acc = self.kernel.create()
        dictionary = bool(getattr(self.kernel, "read_strings_as_dictionary", False))
        for batch in read_piece(piece, columns=self.columns, batch_size=self.batch_size,
                                dictionary_strings=dictionary):
            acc = self.kernel.add_batch(acc, batch)
        yield key, acc


def _write_result(element: tuple[str, Any], folder: str) -> None:
    key, acc = element
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


def run_on_beam(kernel: Kernel, pieces: dict[str, list[Piece]], args: list[str],
                columns: Sequence[str] | None, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """Run ``kernel`` over the pieces of each key on Beam; return key → merged accumulator."""
    elements = [(key, piece) for key, group in pieces.items() for piece in group]
    options = beam_options(_with_dask_partitions(args, len(elements)))
    with worker_errors(), results_folder(options, "jfx-beam-") as folder:
        if elements:
            p = beam.Pipeline(options=options)
            _ = (
                p
                | "Pieces" >> beam.Create(elements)
                | "Spread" >> beam.Reshuffle()
                | "ReadAndAccumulate" >> beam.ParDo(ReadAndAccumulate(kernel, columns, batch_size))
                | "Merge" >> beam.CombinePerKey(AccumulatorCombineFn(kernel))
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
    return {key: kernel.merge(found) if found else kernel.create() for key, found in accs.items()}
