"""The mergeable sketches: KLL quantiles, HyperLogLog, Misra–Gries frequent values, hashes."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from jfx.components._sketches import FrequentValues, HyperLogLog, KllSketch, hash_numbers, hash_strings

RANKS = np.linspace(0.0, 1.0, 101)


def rank_error(data_sorted: np.ndarray, values: np.ndarray, ranks: np.ndarray) -> float:
    """Worst distance between a wanted rank and the closest rank the returned value holds."""
    n = len(data_sorted)
    lo = np.searchsorted(data_sorted, values, side="left") / n
    hi = np.searchsorted(data_sorted, values, side="right") / n
    return float(np.max(np.maximum(0.0, np.maximum(lo - ranks, ranks - hi))))


def sketch_of(parts: list[np.ndarray], k: int = 2048) -> KllSketch:
    s = KllSketch(k)
    for p in parts:
        s.add(p)
    return s


def test_kll_is_exact_while_small():
    data = np.random.default_rng(0).normal(size=2000)
    s = sketch_of(np.array_split(data, 7))
    assert s.exact and s.n == 2000
    ordered = np.sort(data)
    expected = ordered[np.clip(np.ceil(RANKS * 2000).astype(int) - 1, 0, 1999)]
    expected[0] = ordered[0]
    np.testing.assert_array_equal(s.quantiles(RANKS), expected)
    edges = np.linspace(ordered[0], ordered[-1], 11)
    np.testing.assert_array_equal(s.counts(edges), np.histogram(data, bins=edges)[0])


@pytest.mark.parametrize("dist", ["lognormal", "ties", "sorted_stream"])
def test_kll_rank_error_is_under_one_percent(dist):
    rng = np.random.default_rng(1)
    n = 300_000
    data = {"lognormal": rng.lognormal(size=n),
            "ties": rng.integers(0, 10, n).astype(float),
            "sorted_stream": np.arange(n, dtype=float)}[dist]
    cuts = np.sort(rng.choice(np.arange(1, n), size=40, replace=False))
    s = sketch_of(np.split(data, cuts))
    assert not s.exact and s.n == n
    assert rank_error(np.sort(data), s.quantiles(RANKS), RANKS) <= 0.01
    assert s.quantiles([0.0, 1.0]).tolist() == [data.min(), data.max()]
    assert sum(len(lv) for lv in s.levels) < 4 * 2048, "the sketch must stay small"


def test_kll_merge_of_many_partitions_stays_within_error_and_keeps_weight():
    rng = np.random.default_rng(2)
    data = rng.standard_t(3, size=400_000)
    ordered = np.sort(data)
    parts = [sketch_of(np.array_split(chunk, 3)) for chunk in np.array_split(rng.permutation(data), 23)]
    merged = KllSketch()
    for i in rng.permutation(len(parts)):
        merged.merge(parts[i])
    assert merged.n == len(data)
    assert rank_error(ordered, merged.quantiles(RANKS), RANKS) <= 0.01
    edges = np.linspace(data.min(), data.max(), 11)
    counts = merged.counts(edges)
    assert counts.sum() == len(data)
    exact = np.histogram(data, bins=edges)[0]
    assert np.max(np.abs(np.cumsum(counts) - np.cumsum(exact))) <= 0.01 * len(data)


def test_kll_pickles_and_empty_sketch_answers_nan():
    s = sketch_of([np.arange(5000.0)])
    back = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(back.quantiles(RANKS), s.quantiles(RANKS))
    assert np.isnan(KllSketch().quantiles([0.5])[0])


@pytest.mark.parametrize("n", [1_000, 50_000, 300_000])
def test_hll_estimate_within_three_percent(n):
    hll = HyperLogLog()
    values = pa.array([f"user-{i}" for i in range(n)])
    hll.add_hashes(hash_strings(values))
    hll.add_hashes(hash_strings(values.slice(0, n // 2)))  # repeats do not count
    assert abs(hll.estimate() / n - 1) < 0.03


def test_hll_merge_is_identical_for_any_partitioning():
    hashes = hash_numbers(np.random.default_rng(3).integers(0, 10**9, 100_000))
    whole = HyperLogLog()
    whole.add_hashes(hashes)
    parts = [HyperLogLog() for _ in range(5)]
    for i, chunk in enumerate(np.array_split(hashes, 17)):
        parts[i % 5].add_hashes(chunk)
    merged = HyperLogLog()
    for p in reversed(parts):
        merged.merge(p)
    np.testing.assert_array_equal(merged.registers, whole.registers)
    counted = HyperLogLog()
    counted.add_hashes(hash_numbers(np.arange(200_000)))
    assert abs(counted.estimate() / 200_000 - 1) < 0.03


def test_string_hashes_are_stable_across_processes_and_slices():
    values = ["", "a", "b", "ab", "ba", "héllo", "日本", "a" * 300, "taxi-0001"]
    here = hash_strings(pa.array(values)).tolist()
    code = ("import pyarrow as pa; from jfx.components._sketches import hash_strings; "
            f"print(hash_strings(pa.array({values!r})).tolist())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(there) == here  # noqa: S307 - a list of ints printed by our own subprocess
    assert len(set(here)) == len(values)
    sliced = pa.array(["zz", *values, None]).slice(1, len(values))
    assert hash_strings(sliced).tolist() == here
    assert hash_strings(pa.array(values, type=pa.large_string())).tolist() == here
    assert len(hash_strings(pa.array(["x", None, "y"]))) == 2


def test_frequent_values_are_exact_up_to_capacity():
    fv = FrequentValues(capacity=1000)
    rng = np.random.default_rng(4)
    data = rng.integers(0, 1000, 50_000)
    for chunk in np.array_split(data, 9):
        vals, counts = np.unique(chunk, return_counts=True)
        fv.add_counts(pa.array([f"v{v}" for v in vals]), counts)
    vals, counts = np.unique(data, return_counts=True)
    expected = sorted(((f"v{v}", int(c)) for v, c in zip(vals, counts, strict=True)), key=lambda t: (-t[1], t[0]))
    assert fv.exact and fv.top(100) == expected[:100]


def test_frequent_values_misra_gries_bound_when_over_capacity():
    rng = np.random.default_rng(5)
    heavy = np.repeat(np.arange(5), 2000)
    tail = rng.integers(100, 20_000, 40_000)
    data = rng.permutation(np.concatenate([heavy, tail]))
    parts = []
    for chunk in np.array_split(data, 8):
        fv = FrequentValues(capacity=100)
        vals, counts = np.unique(chunk, return_counts=True)
        fv.add_counts(pa.array([str(v) for v in vals]), counts)
        parts.append(fv)
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    assert not merged.exact and merged.total_distinct() <= 100
    top = dict(merged.top(5))
    assert set(top) == {"0", "1", "2", "3", "4"}
    bound = len(data) / 101
    for v in top:
        assert 2000 - bound <= top[v] <= 2000
