"""Pins the public surface of jfx.components so an accidental change shows up.
"""

from __future__ import annotations

from jfx_api import assert_public_surface

import jfx.components

EXPECTED = {
    "BulkInferrer",
    "Evaluator",
    "ExampleGen",
    "ExampleValidator",
    "ImportSchemaGen",
    "Importer",
    "InfraValidator",
    "LatestArtifact",
    "LatestBlessedModel",
    "LatestPipelineArtifact",
    "Notifier",
    "Pusher",
    "SchemaGen",
    "StatisticsGen",
    "Trainer",
    "TrainerContext",
    "Transform",
    "Tuner",
    "TunerSpec",
}


def test_public_api_is_pinned_and_every_name_resolves():
    assert_public_surface(jfx.components, EXPECTED)
