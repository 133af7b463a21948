"""Pins the public surface of jfx.components so an accidental change shows up.
"""

from __future__ import annotations

import jfx.components

EXPECTED = {
    "BulkInferrer", "Evaluator", "ExampleGen", "ExampleValidator", "ImportSchemaGen", "InfraValidator",
    "LatestArtifact", "LatestBlessedModel", "Pusher", "SchemaGen", "StatisticsGen", "Trainer",
    "TrainerContext", "Transform", "Tuner", "TunerSpec",
}


def test_public_api_is_pinned():
    assert set(jfx.components.__all__) == EXPECTED
    assert len(jfx.components.__all__) == len(EXPECTED), "a name is listed twice"


def test_every_public_name_resolves_and_star_import_gives_exactly_them():
    for name in EXPECTED:
        assert getattr(jfx.components, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from jfx.components import *", namespace)  # noqa: S102 - what a user's star import sees
    assert set(namespace) - {"__builtins__"} == EXPECTED
