"""Dynamic batching: rows from concurrent requests share one model call.

:meth:`Batcher.run_batch` is the model call itself: several requests' columns
concatenated, the outputs split back, the counters kept. ``jfx serve``'s event loop
gathers the requests and calls it from its model thread (see :mod:`jfx.core._http`).
:meth:`Batcher.submit` does the gathering for callers that are threads, as follows.

Request threads validate and encode their own rows (so one bad request never spoils a
batch), then :meth:`Batcher.submit` the prepared columns. There is no batching thread:
the first request to arrive at an idle batcher becomes the *leader*, gathers what is
queued (in arrival order, up to ``max_batch_size`` rows), runs the model once on the
concatenation and hands each request exactly its slice of the outputs. Requests that
arrive while a batch runs queue up; when the leader is done it promotes the oldest of
them to lead the next batch. A lone request therefore runs inline, with no thread
hand-off, and costs what an unbatched call costs.

The leader waits for more rows (up to ``batch_timeout_ms``) only while another request
has been *announced* — its HTTP request line has been read but its rows are not queued
yet. With one client there is never anyone to wait for, so batching adds no latency;
with many, the batch fills while the previous one runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BatchStats", "Batcher"]

Columns = Mapping[str, np.ndarray]
PredictFn = Callable[[Columns], dict[str, np.ndarray]]


class _Task:
    __slots__ = ("_signal", "columns", "error", "lead", "result", "rows")

    def __init__(self, columns: Columns, rows: int):
        self.columns = columns
        self.rows = rows
        # released once: when the task is answered, or promoted to leader. A bare lock,
        # not a threading.Event: the wait and the wake-up stay in C (no Condition, no
        # per-wait lock allocation), which is most of a follower's batching cost
        self._signal = threading.Lock()
        self._signal.acquire()
        self.lead = False
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None

    def wake(self) -> None:
        self._signal.release()

    def wait(self) -> None:
        self._signal.acquire()


@dataclass
class BatchStats:
    """Counters for tests and the benchmark: model calls made and rows they carried."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list, repr=False)


class Batcher:
    """Merges concurrent predict calls into batched model calls.

    Args:
        predict: runs the model on prepared, concatenated columns (batch first) and
            returns output name → array with the same number of rows. Called by one
            thread at a time.
        max_batch_size: most rows in one model call. A single request with more rows
            runs alone, unsplit.
        batch_timeout_ms: how long a batch may wait for announced requests to arrive.

    Example:
        >>> b = Batcher(lambda cols: {"y": cols["x"] * 2}, max_batch_size=8)
        >>> b.submit({"x": np.ones(3)})["y"].tolist()
        [2.0, 2.0, 2.0]
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
        self._queue: deque[_Task] = deque()
        self._queued_rows = 0
        self._announced = 0
        self._busy = False  # a leader is gathering or running a batch
        self._cond = threading.Condition(threading.Lock())

    def announce(self) -> None:
        """Says a request is on its way (a leader may wait a little for its rows)."""
        with self._cond:
            self._announced += 1

    def withdraw(self) -> None:
        """Takes back an :meth:`announce` whose request will not be submitted."""
        with self._cond:
            self._announced = max(0, self._announced - 1)
            if self._announced == 0:
                self._cond.notify()  # a waiting leader has no one left to wait for

    def submit(self, columns: Columns, *, announced: bool = False) -> dict[str, np.ndarray]:
        """Queues prepared columns, waits for the batch holding them, returns their outputs.

        Args:
            columns: feature name → array, all with the same number of rows.
            announced: this request called :meth:`announce` before.

        Raises:
            whatever the model call raised for the batch this request was in.
        """
        rows = int(next(iter(columns.values())).shape[0]) if columns else 0
        task = _Task(columns, rows)
        with self._cond:
            if announced:
                self._announced = max(0, self._announced - 1)
            self._queue.append(task)
            self._queued_rows += rows
            if self._busy:
                # the leader (the only waiter) waits until no announced request is missing
                # or the batch is full: wake it then, not for every row that arrives
                if self._announced == 0 or self._queued_rows >= self.max_batch_size:
                    self._cond.notify()
            else:
                self._busy = task.lead = True
        if not task.lead:
            task.wait()
        if task.lead:
            self._lead()
        if task.error is not None:
            raise task.error
        assert task.result is not None
        return task.result

    def close(self) -> None:
        """Nothing to stop (there is no batching thread); kept for symmetry with loaders."""

    def _take(self) -> list[_Task]:
        with self._cond:
            if self.timeout_s > 0 and self._announced > 0 and self._queued_rows < self.max_batch_size:
                deadline = time.monotonic() + self.timeout_s
                while self._announced > 0 and self._queued_rows < self.max_batch_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            tasks = [self._queue.popleft()]  # the leader's own task is always first
            total = tasks[0].rows
            while self._queue and total + self._queue[0].rows <= self.max_batch_size:
                task = self._queue.popleft()
                tasks.append(task)
                total += task.rows
            self._queued_rows -= total
            return tasks

    def run_batch(self, parts: list[Columns], rows: list[int]) -> list[dict[str, np.ndarray]]:
        """One model call on several requests' columns; each gets exactly its rows back.

        What a leader runs; the server's event loop calls it too (from its model thread),
        gathering the requests itself. Counted in :attr:`stats`.
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

    def _lead(self) -> None:
        tasks = self._take()
        try:
            for t, result in zip(tasks, self.run_batch([t.columns for t in tasks], [t.rows for t in tasks])):
                t.result = result
        except BaseException as err:  # noqa: BLE001 - handed to every request in the batch, which re-raises it
            for t in tasks:
                t.error = err
        finally:
            with self._cond:
                if self._queue:  # hand the lead to the oldest waiting request
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.wake()
                else:
                    self._busy = False
            for t in tasks[1:]:
                t.wake()
