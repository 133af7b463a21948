"""penguin monitor: check the served penguin model's live traffic for skew against its training data.

``jfx serve --request_log DIR`` writes sampled requests as Parquet shards
(``requests-<UTC time>-<pid>-<seq>.parquet``): the model's raw input features, with the
training data's column names and types, plus log columns named ``_jfx_...`` (time, model
version, prediction); the label is absent. This pipeline ingests such a folder (or
``s3://`` prefix), computes its statistics and validates them, as ``SERVING`` data, against
the schema and the training statistics of the latest run of the penguin pipeline in the same
metadata store:

* the schema's environments say the label (``species``) and ``year`` are not in serving
  data, so their absence is not an anomaly; the ``_jfx_`` columns are never new columns;
* each feature's value distribution is compared with the training split's (the schema's
  ``skew_comparator``: L-infinity distance for island and sex, Jensen–Shannon divergence
  for the measurements); a feature above its threshold is an anomaly naming the distance
  and the threshold, and the run halts with the report.

    jfx run examples/penguin/pipeline.py                       # train (once): schema, statistics
    jfx run examples/penguin/monitor.py --param request_log=/path/to/request/logs

The request-log folder defaults to ``$JFX_PENGUIN_REQUEST_LOG``, else
``$JFX_HOME/request_log/penguin``. Until the penguin pipeline has run against the same store,
the resolvers find no schema and the validator fails saying its input is missing.
"""

from __future__ import annotations

import os

from jfx import Pipeline, RuntimeParameter
from jfx._config import jfx_home
from jfx.components import ExampleGen, ExampleValidator, LatestPipelineArtifact, StatisticsGen
from jfx.components._schema import SERVING
from jfx.types import ExampleStatistics, Schema  # type: ignore[import-not-found]  # an alias made at import (jfx/__init__.py)

REQUEST_LOG_ENV = "JFX_PENGUIN_REQUEST_LOG"
REQUEST_LOG_PATTERN = "requests-*.parquet"
TRAINING_PIPELINE = "penguin"


def request_log_dir() -> str:
    """Where the penguin model's request logs are, unless ``--param request_log=...`` says."""
    return os.environ.get(REQUEST_LOG_ENV) or str(jfx_home() / "request_log" / "penguin")


def create_pipeline(
    pipeline_root: str | None = None,
    metadata_url: str | None = None,
    beam_pipeline_args: list[str] | None = None,
    request_log: str | None = None,
    training_pipeline: str = TRAINING_PIPELINE,
) -> Pipeline:
    # what the model was trained on: the newest schema and statistics the training pipeline published
    schema = LatestPipelineArtifact(training_pipeline, "SchemaGen", "schema", Schema)
    training_statistics = LatestPipelineArtifact(training_pipeline, "StatisticsGen", "statistics", ExampleStatistics)
    # what it is asked now: the request log, one split
    requests = ExampleGen(
        input_base=RuntimeParameter("request_log", str, default=request_log or request_log_dir()),
        format="parquet", input_pattern=REQUEST_LOG_PATTERN, splits={"serving": 1},
    ).with_id("RequestLogGen")
    statistics = StatisticsGen(examples=requests.outputs["examples"]).with_id("RequestStatisticsGen")
    validator = ExampleValidator(
        statistics=statistics.outputs["statistics"],
        schema=schema.outputs["artifact"],
        training_statistics=training_statistics.outputs["artifact"],
        environment=SERVING,
    ).with_id("SkewValidator")
    return Pipeline(
        f"{training_pipeline}-monitor",
        components=[schema, training_statistics, requests, statistics, validator],
        pipeline_root=pipeline_root,
        metadata_url=metadata_url,
        beam_pipeline_args=beam_pipeline_args,
    )
