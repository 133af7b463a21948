"""penguin: the TFX penguin pipeline on jfx (data half).

The Palmer penguins table (shipped by the ``palmerpenguins`` package) is ingested and
split, its statistics computed and a schema inferred from them. A second batch of
"new" data (by default the same table) is ingested the same way and validated against
that schema, with the training statistics as the drift baseline. When the new data has
anomalies, ExampleValidator writes a report and halts the pipeline.

    jfx run examples/penguin/pipeline.py
    jfx run examples/penguin/pipeline.py --param new_data=/path/to/folder/with/penguins.csv
    jfx run examples/penguin/pipeline.py --beam-arg=--runner=DirectRunner   # data work on Beam
"""

from __future__ import annotations

from pathlib import Path

from jfx import Pipeline, RuntimeParameter
from jfx.components import ExampleGen, ExampleValidator, SchemaGen, StatisticsGen


def penguins_dir() -> str:
    """The folder of ``penguins.csv`` inside the installed ``palmerpenguins`` package."""
    import palmerpenguins

    return str(Path(palmerpenguins.__file__).parent / "data")


def create_pipeline(
    pipeline_root: str | None = None,
    metadata_url: str | None = None,
    beam_pipeline_args: list[str] | None = None,
) -> Pipeline:
    data = penguins_dir()
    examples = ExampleGen(input_base=data, input_pattern="penguins.csv", splits={"train": 2, "eval": 1})
    statistics = StatisticsGen(examples=examples.outputs["examples"])
    schema = SchemaGen(statistics=statistics.outputs["statistics"])

    new_examples = ExampleGen(
        input_base=RuntimeParameter("new_data", str, default=data), input_pattern="penguins.csv",
        splits={"train": 2, "eval": 1},
    ).with_id("NewExampleGen")
    new_statistics = StatisticsGen(examples=new_examples.outputs["examples"]).with_id("NewStatisticsGen")
    validator = ExampleValidator(
        statistics=new_statistics.outputs["statistics"],
        schema=schema.outputs["schema"],
        baseline_statistics=statistics.outputs["statistics"],
    )
    return Pipeline(
        "penguin",
        components=[examples, statistics, schema, new_examples, new_statistics, validator],
        pipeline_root=pipeline_root,
        metadata_url=metadata_url,
        beam_pipeline_args=beam_pipeline_args,
    )

