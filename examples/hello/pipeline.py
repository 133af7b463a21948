"""hello: the smallest real jfx pipeline.

Three components: generate a table (``rows`` is a runtime parameter), summarise its
columns, and write a Markdown report. Run it, then run it again to see the cache:

    jfx run examples/hello/pipeline.py
    jfx run examples/hello/pipeline.py --param rows=500
"""

from __future__ import annotations

import csv
import math
import random

from jfx import Input, Output, Parameter, Pipeline, RuntimeParameter, component
from jfx.types import Artifact, Dataset, Metrics  # type: ignore[import-not-found]  # an alias made at import (jfx/__init__.py)


class Report(Artifact):
    """A human-readable report (``report.md``)."""


SPECIES = ("Adelie", "Chinstrap", "Gentoo")


@component
def make_data(data: Output[Dataset], rows: Parameter[int] = 200, seed: Parameter[int] = 0):
    """Write ``data.csv``: ``rows`` penguin-like measurements drawn with ``seed``."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = random.Random(seed)
    with open(data.path("data.csv"), "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["species", "bill_length_mm", "flipper_length_mm", "body_mass_g"])
        for _ in range(rows):
            k = rng.randrange(len(SPECIES))
            out.writerow([
                SPECIES[k],
                round(rng.gauss(39 + 6 * k, 2.5), 1),
                round(rng.gauss(190 + 12 * k, 6.0), 1),
                round(rng.gauss(3700 + 700 * k, 350.0)),
            ])
    data.properties["rows"] = rows


@component
def summarize(data: Input[Dataset], summary: Output[Metrics]):
    """Count, mean, std, min and max of every numeric column; counts per species."""
    columns: dict[str, list[float]] = {}
    species: dict[str, int] = {}
    with open(data.path("data.csv"), newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            species[row["species"]] = species.get(row["species"], 0) + 1
            for key, value in row.items():
                if key != "species":
                    columns.setdefault(key, []).append(float(value))
    stats = {}
    for key, values in columns.items():
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        stats[key] = {"count": len(values), "mean": mean, "std": std, "min": min(values), "max": max(values)}
    summary.write_json({"columns": stats, "species": species}, "summary.json")
    summary.properties["rows"] = sum(species.values())


@component
def write_report(summary: Input[Metrics], report: Output[Report], title: Parameter[str] = "hello, jfx"):
    """Render the summary as ``report.md``."""
    doc = summary.read_json("summary.json")
    lines = [f"# {title}", "", f"{summary.properties['rows']} rows.", "",
             "| column | mean | std | min | max |", "|---|---|---|---|---|"]
    for key, s in doc["columns"].items():
        lines.append(f"| {key} | {s['mean']:.2f} | {s['std']:.2f} | {s['min']:.1f} | {s['max']:.1f} |")
    lines += ["", "| species | rows |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in sorted(doc["species"].items())]
    report.path("report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def create_pipeline(pipeline_root: str | None = None, metadata_url: str | None = None) -> Pipeline:
    data = make_data(rows=RuntimeParameter("rows", int, default=200))
    summary = summarize(data=data.outputs["data"])
    report = write_report(summary=summary.outputs["summary"])
    return Pipeline("hello", components=[data, summary, report],
                    pipeline_root=pipeline_root, metadata_url=metadata_url)


if __name__ == "__main__":
    from jfx.orchestrators import LocalDagRunner

    print(LocalDagRunner().run(create_pipeline()).state)
