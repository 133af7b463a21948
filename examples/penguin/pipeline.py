"""penguin: the TFX penguin pipeline on jfx, end to end.

The Palmer penguins table (shipped by the ``palmerpenguins`` package) is the reference:
it is ingested and split, its statistics computed and a schema inferred from them (with
TFDV's environments: the label and ``year`` are not in ``SERVING`` data, and skew thresholds
that ``monitor.py`` checks the model's request logs against).
Incoming data (``new_data``; by default the same table) is ingested the same way and
validated against that schema, with the reference statistics as the drift baseline;
when it has anomalies, ExampleValidator writes a report and halts the pipeline.
Otherwise the validated data is transformed (z-scored measurements, vocabularies for
island, sex and species), a DNN classifier is trained on it (logged to MLflow), and
evaluated per slice against the latest blessed model; a blessed model that the model
server loads and answers with is pushed to ``serving_dir/penguin/<version>/``.

    jfx run examples/penguin/pipeline.py
    jfx run examples/penguin/pipeline.py --param new_data=/path/to/folder/with/penguins.csv
    jfx run examples/penguin/pipeline.py --beam-arg=--runner=DirectRunner   # data work on Beam
    jfx serve --model_base_path ~/.jfx/serving/penguin --model_name penguin

Where the data comes from and where the model goes are settings, read when the pipeline is
created: ``create_pipeline(data_dir=..., serving_dir=...)``, else the environment variables
``JFX_PENGUIN_DATA`` (a folder holding ``penguins.csv``: a local folder or ``s3://``/``gs://``;
default: the ``palmerpenguins`` package's data) and ``JFX_PENGUIN_SERVING_DIR`` (default:
``$JFX_HOME/serving``). A Kubeflow cluster sees neither default, so compile it for a cluster with
both on the object store (docs/kubeflow.md)::

    JFX_PENGUIN_DATA=s3://my-bucket/penguin/data JFX_PENGUIN_SERVING_DIR=s3://my-bucket/serving \
        jfx compile examples/penguin/pipeline.py --target kubeflow --image IMAGE \
        --pipeline-root s3://my-bucket/jfx --s3-secret jfx-s3 --metadata-secret jfx-db:url
"""

from __future__ import annotations

import os
from pathlib import Path

from jfx import Pipeline, RuntimeParameter
from jfx._config import jfx_home
from jfx.components import (
    Evaluator,
    ExampleGen,
    ExampleValidator,
    InfraValidator,
    LatestBlessedModel,
    Pusher,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
)

HERE = Path(__file__).resolve().parent

DATA_ENV = "JFX_PENGUIN_DATA"
SERVING_ENV = "JFX_PENGUIN_SERVING_DIR"
NOT_IN_SERVING = ["species", "year"]  # the label, and a column the model does not take
SKEW_THRESHOLD = 0.15

EVAL_CONFIG = {
    "label_key": "species",
    "slicing_specs": [[], ["island"], ["island", "sex"], [{"column": "bill_length_mm", "quantiles": 4}]],
    # every metric per slice gets a 95% interval (Poisson bootstrap); rates at decision thresholds per class
    "confidence_intervals": {"num_bootstrap_samples": 20, "confidence_level": 0.95, "seed": 0},
    "fairness": {"thresholds": [0.25, 0.5, 0.75]},
    "thresholds": {
        # a new model must be accurate, and no worse than the last blessed one by more than 0.02
        "accuracy": {"lower_bound": 0.9, "change": {"higher_is_better": True, "absolute": 0.02}},
    },
}


def penguins_dir() -> str:
    """The folder of ``penguins.csv`` inside the installed ``palmerpenguins`` package.

    Found without importing the package (its import loads pandas, ≈0.25 s).
    """
    import importlib.util

    spec = importlib.util.find_spec("palmerpenguins")
    if spec is None or not spec.origin:
        raise ModuleNotFoundError("No module named 'palmerpenguins'; pip install palmerpenguins")
    return str(Path(spec.origin).parent / "data")


def create_pipeline(
    pipeline_root: str | None = None,
    metadata_url: str | None = None,
    beam_pipeline_args: list[str] | None = None,
    serving_dir: str | None = None,
    data_dir: str | None = None,
) -> Pipeline:
    data = data_dir or os.environ.get(DATA_ENV) or penguins_dir()
    serving_dir = serving_dir or os.environ.get(SERVING_ENV) or str(jfx_home() / "serving")
    splits = {"train": 2, "eval": 1}
    # the reference data: its statistics and the schema inferred from them
    examples = ExampleGen(input_base=data, input_pattern="penguins.csv", splits=splits)
    statistics = StatisticsGen(examples=examples.outputs["examples"])
    # Serving data (the model's request logs, see monitor.py) holds the model's inputs only:
    # no label, no year. A skew above 0.15 between serving and training data is an anomaly
    # (random 120-row samples of the table score at most ≈0.08; one island's traffic 0.5+).
    schema = SchemaGen(statistics=statistics.outputs["statistics"], not_in_serving=NOT_IN_SERVING,
                       skew_threshold=SKEW_THRESHOLD)

    # incoming data: validated against the schema before anything trains on it
    new_examples = ExampleGen(
        input_base=RuntimeParameter("new_data", str, default=data), input_pattern="penguins.csv", splits=splits,
    ).with_id("NewExampleGen")
    new_statistics = StatisticsGen(examples=new_examples.outputs["examples"]).with_id("NewStatisticsGen")
    validator = ExampleValidator(
        statistics=new_statistics.outputs["statistics"],
        schema=schema.outputs["schema"],
        baseline_statistics=statistics.outputs["statistics"],
    )

    transform = Transform(
        examples=new_examples.outputs["examples"], schema=schema.outputs["schema"],
        module_file=str(HERE / "preprocessing.py"),
    ).after(validator)
    trainer = Trainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        module_file=str(HERE / "model.py"),
    )
    baseline = LatestBlessedModel(candidate=trainer.outputs["model"])
    evaluator = Evaluator(
        examples=new_examples.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline"],
        eval_config=EVAL_CONFIG,
    )
    infra = InfraValidator(model=trainer.outputs["model"], examples=new_examples.outputs["examples"])
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra.outputs["infra_blessing"],
        push_destination={"filesystem": {
            "base_directory": serving_dir,
            "model_name": "penguin",
        }},
    )
    return Pipeline(
        "penguin",
        components=[examples, statistics, schema, new_examples, new_statistics, validator,
                    transform, trainer, baseline, evaluator, infra, pusher],
        pipeline_root=pipeline_root,
        metadata_url=metadata_url,
        beam_pipeline_args=beam_pipeline_args,
    )
