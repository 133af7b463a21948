"""Dynamic batching: rows from concurrent requests share one model call.

``jfx serve``'s event loop (:mod:`jfx.core._http`) gathers the requests: each request
validates and encodes its own rows first (so one bad request never spoils a batch), then
queues them; one model thread runs one batch at a time, in arrival order, at most
``max_batch_size`` rows (a single bigger request runs alone, unsplit). A request that
reaches an idle model goes at once, so a lone client pays no batching delay; after a
call, the next batch waits at most ``batch_timeout_ms`` for the clients that call just
answered. :class:`Batcher` holds those settings, makes the model call on the
concatenated rows (:meth:`Batcher.run_batch`), hands each request exactly its slice of
the outputs, and counts what it did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BatchStats", "Batcher"]

Columns = Mapping[str, np.ndarray]
PredictFn = Callable[[Columns], dict[str, np.ndarray]]


@dataclass
class BatchStats:
    """Counters for tests and the benchmark: model calls made and rows they carried."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list, repr=False)


class Batcher:
    """A servable's batching settings, and the batched model call itself.

    Args:
        predict: runs the model on prepared, concatenated columns (batch first) and
            returns output name → array with the same number of rows. Called by one
            thread at a time.
        max_batch_size: most rows in one model call. A single request with more rows
            runs alone, unsplit.
        batch_timeout_ms: the longest a batch waits for more requests to join it.

    Example:
        >>> b = Batcher(lambda cols: {"y": cols["x"] * 2}, max_batch_size=8)
        >>> [r["y"].tolist() for r in b.run_batch([{"x": np.ones(2)}, {"x": np.zeros(1)}], [2, 1])]
        [[2.0, 2.0], [0.0]]
    """

    def __init__(self, predict: PredictFn, *, max_batch_size: int = 64, batch_timeout_ms: float = 2.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if batch_timeout_ms < 0:
            raise ValueError(f"batch_timeout_ms must be >= 0, got {batch_timeout_ms}")
        self._predict = predict
        self.max_batch_size = int(max_batch_size)
        self.timeout_s = float(batch_timeout_ms) / 1000.0
        self.stats = BatchStats()

    def run_batch(self, parts: list[Columns], rows: list[int]) -> list[dict[str, np.ndarray]]:
        """One model call on several requests' columns; each gets exactly its rows back.

        Raises:
            whatever the model call raised (every request of the batch gets that error).
        """
        try:
            if len(parts) == 1:
                outputs = self._predict(parts[0])
            else:
                names = parts[0].keys()
                outputs = self._predict({n: np.concatenate([c[n] for c in parts]) for n in names})
            results, start = [], 0
            for n in rows:
                results.append({k: v[start:start + n] for k, v in outputs.items()})
                start += n
            return results
        finally:
            total = sum(rows)
            s = self.stats
            s.batches += 1
            s.rows += total
            s.requests += len(parts)
            s.largest = max(s.largest, total)
            if len(s.sizes) < 100_000:
                s.sizes.append(total)

    def close(self) -> None:
        """Nothing to stop (the server's model thread runs the batches); kept for symmetry with loaders."""
