"""Pins the public surface of jfx.orchestrators so an accidental change shows up.
"""

from __future__ import annotations

from jfx_api import assert_public_surface

import jfx.orchestrators

EXPECTED = {
    "BeamDagRunner", "KubeflowDagRunner", "LocalDagRunner", "LogProgress", "NodeOutcome", "NodeState",
    "Progress", "ResolverContext", "RichProgress", "RunInfo", "RunResult", "RunState", "launch_node",
    "reap_abandoned",
}


def test_public_api_is_pinned_and_every_name_resolves():
    assert_public_surface(jfx.orchestrators, EXPECTED)
