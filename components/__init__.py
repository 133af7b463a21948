"""The standard components, written with the same ``@component`` users write.

Names are imported on first use, so ``import jfx.components`` stays cheap and
optional engines (Beam, Great Expectations) load only when a component needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExampleGen": "jfx.components._example_gen",
    "StatisticsGen": "jfx.components._statistics_gen",
    "SchemaGen": "jfx.components._schema_gen",
    "ImportSchemaGen": "jfx.components._schema_gen",
    "ExampleValidator": "jfx.components._example_validator",
    "Transform": "jfx.components._transform",
    "Trainer": "jfx.components._trainer",
    "TrainerContext": "jfx.components._trainer",
    "Tuner": "jfx.components._tuner",
    "TunerSpec": "jfx.components._tuner",
    "Evaluator": "jfx.components._evaluator",
    "BulkInferrer": "jfx.components._bulk_inferrer",
    "InfraValidator": "jfx.components._infra_validator",
    "Pusher": "jfx.components._pusher",
    "LatestBlessedModel": "jfx.components._resolvers",
    "LatestArtifact": "jfx.components._resolvers",
    "Importer": "jfx.components._importer",
    "LatestPipelineArtifact": "jfx.components._resolvers",
    "Notifier": "jfx.components._notifier",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jfx.components' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
