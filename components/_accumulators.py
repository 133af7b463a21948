"""The analyzers' accumulators: mergeable, order-independent partial results of one pass.

:class:`jfx.components._analyzers.AnalysisKernel` keeps one per analyzer; :func:`finish`
turns a merged accumulator into the analyzer's constants (and, for a vocabulary, the
host-side string encoder).

Each accumulator's ``merge(other)`` folds ``other`` into ``self`` and leaves ``other``
as it was; the kernel merges into a fresh accumulator, so its ``merge`` never mutates
its inputs (the kernel contract of :class:`jfx.components._engine.Kernel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jfx.components._sketches import KllSketch
from jfx.errors import InvalidArgumentError

if TYPE_CHECKING:
    from jfx.components._analyzers import AnalyzerRecord

__all__ = ["ACCUMULATORS", "finish"]


def _grow(partials: list[float], x: float) -> None:
    """Adds ``x`` to an exact sum kept as non-overlapping floats (Shewchuk; math.fsum's state)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _exact(partials: list[float]) -> Fraction:
    return sum((Fraction(p) for p in partials), Fraction(0))


@dataclass
class _Moments:
    """Count and exact sums of per-batch sums: merging in any order gives the same bits."""

    n: int = 0
    s1: list[float] = field(default_factory=list)
    s2: list[float] = field(default_factory=list)

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.n += len(x)
        _grow(self.s1, math.fsum(x))
        _grow(self.s2, math.fsum(x * x))  # float32 squares are exact in float64

    def merge(self, other: _Moments) -> None:
        self.n += other.n
        for p in other.s1:
            _grow(self.s1, p)
        for p in other.s2:
            _grow(self.s2, p)


@dataclass
class _MinMax:
    n: int = 0
    min: float = math.inf
    max: float = -math.inf

    def add(self, x: np.ndarray) -> None:
        if len(x):
            self.n += len(x)
            self.min = min(self.min, float(x.min()))
            self.max = max(self.max, float(x.max()))

    def merge(self, other: _MinMax) -> None:
        self.n += other.n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)


@dataclass
class _Quantiles:
    sketch: KllSketch = field(default_factory=KllSketch)

    def add(self, x: np.ndarray) -> None:
        self.sketch.add(x)

    def merge(self, other: _Quantiles) -> None:
        self.sketch.merge(other.sketch)


@dataclass
class _Counts:
    """Exact counts of every distinct string."""

    counts: dict[str, int] = field(default_factory=dict)

    def add_strings(self, values: pa.Array) -> None:
        values = values.drop_null()
        if not len(values):
            return
        vc = pc.value_counts(values)
        counts = self.counts
        for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_numpy().tolist(), strict=True):
            counts[v] = counts.get(v, 0) + c

    def merge(self, other: _Counts) -> None:
        for v, c in other.counts.items():
            self.counts[v] = self.counts.get(v, 0) + c


ACCUMULATORS = {
    "scale_to_z_score": _Moments,
    "scale_to_0_1": _MinMax,
    "bucketize": _Quantiles,
    "compute_and_apply_vocabulary": _Counts,
}


def finish(record: AnalyzerRecord, acc: Any) -> tuple[dict[str, np.ndarray], dict | None]:
    """An accumulator → (constants, host encoder)."""
    if record.kind == "scale_to_z_score":
        if acc.n == 0:
            mean, std = 0.0, 1.0
        else:
            m = _exact(acc.s1) / acc.n
            var = max(_exact(acc.s2) / acc.n - m * m, Fraction(0))
            mean, std = float(m), math.sqrt(float(var))
            std = std if np.float32(std) > 0 else 1.0
        return {"mean": np.float32(mean), "std": np.float32(std)}, None
    if record.kind == "scale_to_0_1":
        lo, hi = (acc.min, acc.max) if acc.n else (0.0, 0.0)
        return {"min": np.float32(lo), "max": np.float32(hi)}, None
    if record.kind == "bucketize":
        b = record.params["num_buckets"]
        ranks = np.arange(1, b, dtype=np.float64) / b
        q = acc.sketch.quantiles(ranks) if acc.sketch.n else np.full(b - 1, np.inf)
        return {"boundaries": np.asarray(q, np.float32)}, None
    if record.kind == "compute_and_apply_vocabulary":
        p = record.params
        items = sorted(((v, c) for v, c in acc.counts.items() if c >= p["frequency_threshold"]),
                       key=lambda vc: (-vc[1], vc[0]))
        if p["top_k"] is not None:
            items = items[: p["top_k"]]
        return {}, {"vocabulary": [v for v, _ in items], "oov_buckets": p["num_oov_buckets"]}
    raise InvalidArgumentError(f"unknown analyzer kind {record.kind!r}")
