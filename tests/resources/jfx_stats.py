"""Statistics documents built by hand, in the ExampleStatistics format of docs/artifacts.md."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from jfx.types import ExampleStatistics


def num_col(values, ctype="float", missing=0):
    arr = np.asarray(values, dtype=float)
    counts, bounds = np.histogram(arr, bins=10)
    return {"type": ctype, "count": len(arr), "missing": missing, "numeric": {
        "min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean()), "std": float(arr.std()),
        "zeros": int((arr == 0).sum()), "quantiles": np.quantile(arr, np.linspace(0, 1, 101)).tolist(),
        "histogram": {"boundaries": bounds.tolist(), "counts": counts.tolist()}}}


def str_col(values, missing=0, unique=None):
    counts = Counter(values)
    tops = [{"value": v, "count": c} for v, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return {"type": "string", "count": len(values), "missing": missing,
            "string": {"unique": unique if unique is not None else len(counts), "top_values": tops[:100],
                       "avg_length": float(np.mean([len(v) for v in values]))}}


def split_doc(split, **columns):
    rows = max(c["count"] + c["missing"] for c in columns.values())
    return {"split": split, "num_rows": rows, "columns": columns}


def write_stats(root, docs):
    root.mkdir(parents=True, exist_ok=True)
    for split, doc in docs.items():
        (root / f"Split-{split}").mkdir()
        (root / f"Split-{split}" / "statistics.json").write_text(json.dumps(doc))
    return ExampleStatistics(root, properties={"splits": list(docs)})
