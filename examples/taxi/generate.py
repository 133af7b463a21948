"""A synthetic Chicago-taxi-like table, generated with NumPy (1M rows in about a second).

The columns follow the Chicago taxi trips data that the TFX taxi example uses: trip
times, distances and fares, pickup and dropoff coordinates and community areas,
company and payment type, about 5% nulls in several columns, and the example's binary
label ``big_tipper`` (tips above 20% of the fare).

    python -m jfx.examples.taxi.generate --rows 1000000 --out /tmp/taxi --format both

Example:
    >>> table = generate(1000, seed=0)
    >>> table.num_rows, "big_tipper" in table.column_names
    (1000, True)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["generate", "write", "main", "NULL_FRACTION"]

NULL_FRACTION = 0.05
_START_US = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z in microseconds
_YEAR_US = 365 * 24 * 3600 * 1_000_000
_PAYMENT_TYPES = np.array(["Credit Card", "Cash", "Mobile", "Prcard", "Unknown", "No Charge", "Dispute"])
_PAYMENT_WEIGHTS = np.array([0.52, 0.38, 0.05, 0.03, 0.01, 0.007, 0.003])
_COMPANIES = np.array([f"Taxi Company {i:03d}" for i in range(100)])
_AREAS = 77  # Chicago's community areas
# Rough centres of the community areas, fixed so every seed shares the same map.
_AREA_LAT = 41.65 + 0.37 * np.random.default_rng(77).random(_AREAS)
_AREA_LON = -87.85 + 0.33 * np.random.default_rng(78).random(_AREAS)


def _zipf_choice(rng: np.random.Generator, n: int, k: int, a: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1) ** a
    return rng.choice(k, size=n, p=weights / weights.sum())


def _with_nulls(rng: np.random.Generator, values: np.ndarray | pa.Array, fraction: float) -> pa.Array:
    mask = rng.random(len(values)) < fraction
    if isinstance(values, pa.Array):
        return pa.compute.if_else(pa.array(mask), pa.scalar(None, values.type), values)
    return pa.array(values, mask=mask)


def _strings(categories: np.ndarray, codes: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(categories)).dictionary_decode()


def generate(n_rows: int, seed: int = 0) -> pa.Table:
    """``n_rows`` synthetic taxi trips drawn with ``seed`` (same seed, same table)."""
    if n_rows < 0:
        raise ValueError(f"n_rows must be non-negative, got {n_rows}")
    rng = np.random.default_rng(seed)
    n = n_rows
    start = _START_US + np.sort(rng.integers(0, _YEAR_US, n))
    miles = np.round(rng.lognormal(mean=0.9, sigma=0.9, size=n), 2)
    miles[rng.random(n) < 0.02] = 0.0  # cancelled / zero-distance trips
    speed_mph = np.clip(rng.normal(18.0, 6.0, n), 3.0, 60.0)
    seconds = np.round(miles / speed_mph * 3600 + rng.exponential(120, n)).astype(np.int64)
    fare = np.round(3.25 + 2.25 * miles + 0.25 * seconds / 36 + rng.normal(0, 0.5, n).clip(-1, None), 2)
    fare = np.maximum(fare, 3.25)
    payment = rng.choice(len(_PAYMENT_TYPES), size=n, p=_PAYMENT_WEIGHTS)
    card = payment == 0
    tip_rate = np.where(card, rng.gamma(4.0, 0.05, n), np.where(rng.random(n) < 0.05, rng.gamma(2.0, 0.05, n), 0.0))
    tips = np.round(fare * tip_rate, 2)
    tolls = np.where(rng.random(n) < 0.03, np.round(rng.uniform(1, 8, n), 2), 0.0)
    extras = np.round(rng.choice([0.0, 0.0, 1.0, 1.5, 4.0], size=n), 2)
    pickup_area = _zipf_choice(rng, n, _AREAS, 0.8)
    dropoff_area = _zipf_choice(rng, n, _AREAS, 0.8)
    jitter = lambda: rng.normal(0.0, 0.01, n)  # noqa: E731 - one line, four uses
    company = _zipf_choice(rng, n, len(_COMPANIES), 1.05)
    taxi_id = rng.integers(0, 5000, n)
    columns = {
        "trip_start_timestamp": pa.array(start, type=pa.timestamp("us")),
        "trip_seconds": _with_nulls(rng, seconds, NULL_FRACTION),
        "trip_miles": _with_nulls(rng, miles, NULL_FRACTION),
        "pickup_community_area": _with_nulls(rng, pickup_area + 1, NULL_FRACTION),
        "dropoff_community_area": _with_nulls(rng, dropoff_area + 1, NULL_FRACTION),
        "pickup_latitude": _with_nulls(rng, np.round(_AREA_LAT[pickup_area] + jitter(), 6), NULL_FRACTION),
        "pickup_longitude": _with_nulls(rng, np.round(_AREA_LON[pickup_area] + jitter(), 6), NULL_FRACTION),
        "dropoff_latitude": _with_nulls(rng, np.round(_AREA_LAT[dropoff_area] + jitter(), 6), NULL_FRACTION),
        "dropoff_longitude": _with_nulls(rng, np.round(_AREA_LON[dropoff_area] + jitter(), 6), NULL_FRACTION),
        "fare": pa.array(fare),
        "tips": pa.array(tips),
        "tolls": pa.array(tolls),
        "extras": pa.array(extras),
        "trip_total": pa.array(np.round(fare + tips + tolls + extras, 2)),
        "payment_type": _strings(_PAYMENT_TYPES, payment),
        "company": _with_nulls(rng, _strings(_COMPANIES, company), NULL_FRACTION),
        "taxi_id": _strings(np.array([f"taxi-{i:04x}" for i in range(5000)]), taxi_id),
        "big_tipper": pa.array((tips > 0.2 * fare).astype(np.int64)),
    }
    return pa.table(columns)


def write(table: pa.Table, out: str | Path, fmt: str = "parquet", *, row_group_size: int = 131_072) -> list[Path]:
    """Write ``table`` as ``taxi.parquet`` and/or ``taxi.csv`` in ``out``; return the paths."""
    if fmt not in ("parquet", "csv", "both"):
        raise ValueError(f"format must be parquet, csv or both, got {fmt!r}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt in ("parquet", "both"):
        path = folder / "taxi.parquet"
        pq.write_table(table, path, row_group_size=row_group_size)
        written.append(path)
    if fmt in ("csv", "both"):
        path = folder / "taxi.csv"
        pacsv.write_csv(table, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jfx.examples.taxi.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to generate (default 100000)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=("parquet", "csv", "both"), default="parquet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write(generate(args.rows, args.seed), args.out, args.format):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
