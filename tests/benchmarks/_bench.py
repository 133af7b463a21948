"""What every benchmark shares: one statistic over repeats, named beside each figure, and targets that set the exit status.

A figure is printed with the statistic it is (``median of 5``, ``best of 5``); medians
by default (``--stat best`` for the best). A missed target prints ``MISSED`` and makes
the script exit 1, so ``make bench`` fails on a regression instead of printing it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

STATS = ("median", "best")


def add_stat_argument(parser: argparse.ArgumentParser) -> None:
    """Adds ``--stat {median,best}`` (default: median)."""
    parser.add_argument("--stat", choices=STATS, default="median",
                        help="how repeats are summarised: their median (default) or their best")


def summarise(samples: Sequence[float], stat: str = "median", *, higher_is_better: bool = False) -> float:
    """The median of ``samples``, or their best (the lowest time, or the highest rate)."""
    if not samples:
        raise ValueError("no samples to summarise")
    if stat == "median":
        return float(statistics.median(samples))
    if stat == "best":
        return float(max(samples) if higher_is_better else min(samples))
    raise ValueError(f"stat {stat!r} is not one of {STATS}")


def label(stat: str, n: int) -> str:
    """How a figure was summarised, e.g. ``"median of 5"``; ``"1 run"`` when nothing was."""
    return "1 run" if n == 1 else f"{stat} of {n}"


@dataclass
class Targets:
    """The targets a benchmark checks; :meth:`exit_code` is 1 when any was missed."""

    missed: list[str] = field(default_factory=list)
    checked: int = 0

    def check(self, what: str, value: float, limit: float, unit: str, *, at_least: bool = False) -> str:
        """Records whether ``value`` is under ``limit`` (over it, with ``at_least``); returns ``"met"``/``"MISSED"``."""
        self.checked += 1
        ok = value >= limit if at_least else value < limit
        if not ok:
            self.missed.append(f"{what}: {value:.3g} {unit} (target {'>=' if at_least else '<'} {limit:g} {unit})")
        return "met" if ok else "MISSED"

    def exit_code(self) -> int:
        """Prints the missed targets, if any; 1 if there were, else 0."""
        if self.missed:
            print(f"MISSED {len(self.missed)} of {self.checked} targets:")
            for line in self.missed:
                print(f"  {line}")
            return 1
        print(f"all {self.checked} targets met")
        return 0


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``repeat`` calls of ``fn``, after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)
