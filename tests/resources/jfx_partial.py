"""A penguin-shaped pipeline for the partial-run tests, small enough to run in a second.

    ingest(data) -> validate (halts on unknown species) -> fit (vocabulary, after validate)
                 -> train(fit) -> evaluate(ingest, train)  (fails on a species it never saw)

As in the penguin example, ``evaluate`` reads the ingested rows directly, so a partial run
that mixes the ingest of one run with the fit of another fails on a species the model
never saw ('Penguinzilla'). Components are module level: Beam workers and kfp.local tasks
import them by name.
"""

from __future__ import annotations

from pathlib import Path

from jfx import Input, Output, Parameter, Pipeline, RuntimeParameter, component
from jfx.types import Dataset, Metrics, Model

KNOWN = "Adelie,Chinstrap,Gentoo"


def _data_fingerprint(params):
    return Path(params["path"]).read_text()


@component(external_fingerprint=_data_fingerprint)
def ingest(examples: Output[Dataset], path: Parameter[str] = ""):
    examples.write_json(Path(path).read_text().split(), "rows.json")


@component
def validate(examples: Input[Dataset], anomalies: Output[Metrics], known: Parameter[str] = KNOWN):
    from jfx.errors import HaltPipeline

    unknown = sorted(set(examples.read_json("rows.json")) - set(known.split(",")))
    anomalies.write_json({"unknown": unknown})
    if unknown:
        raise HaltPipeline(f"unknown species: {', '.join(unknown)}")


@component
def fit(examples: Input[Dataset], vocabulary: Output[Metrics]):
    vocabulary.write_json(sorted(set(examples.read_json("rows.json"))))


@component
def train(vocabulary: Input[Metrics], model: Output[Model]):
    model.write_json({"classes": vocabulary.read_json()})


@component
def evaluate(examples: Input[Dataset], model: Input[Model], evaluation: Output[Metrics]):
    classes = model.read_json()["classes"]
    for row in examples.read_json("rows.json"):
        if row not in classes:
            raise ValueError(f"species {row!r} is not one the model knows ({', '.join(classes)})")
    evaluation.write_json({"rows": len(examples.read_json("rows.json"))})


def penguinish(root: str, url: str, name: str = "penguinish") -> Pipeline:
    """The pipeline; ``data`` (a runtime parameter) is the text file of species to ingest."""
    rows = ingest(path=RuntimeParameter("data", str, default=""))
    check = validate(examples=rows.outputs["examples"])
    vocab = fit(examples=rows.outputs["examples"]).after(check)
    model = train(vocabulary=vocab.outputs["vocabulary"])
    scored = evaluate(examples=rows.outputs["examples"], model=model.outputs["model"])
    return Pipeline(name, components=[rows, check, vocab, model, scored], pipeline_root=root, metadata_url=url)
