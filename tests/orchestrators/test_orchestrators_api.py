"""Pins the public surface of jfx.orchestrators so an accidental change shows up.

Two refactors of the orchestrators (typed run records, one runner interface) may add names
(a run session, a runner protocol): add them here when they land, on purpose.
"""

from __future__ import annotations

import jfx.orchestrators

EXPECTED = {
    "BeamDagRunner", "KubeflowDagRunner", "LocalDagRunner", "LogProgress", "NodeOutcome", "NodeState",
    "Progress", "ResolverContext", "RichProgress", "RunInfo", "RunResult", "RunState", "launch_node",
    "reap_abandoned",
}


def test_public_api_is_pinned():
    assert set(jfx.orchestrators.__all__) == EXPECTED
    assert len(jfx.orchestrators.__all__) == len(EXPECTED), "a name is listed twice"


def test_every_public_name_resolves_and_star_import_gives_exactly_them():
    for name in EXPECTED:
        assert getattr(jfx.orchestrators, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from jfx.orchestrators import *", namespace)  # noqa: S102 - what a user's star import sees
    assert set(namespace) - {"__builtins__"} == EXPECTED
