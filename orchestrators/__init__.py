"""Orchestrators: the launcher every runner shares, and the runners."""

from typing import TYPE_CHECKING

from jfx.orchestrators._launcher import NodeOutcome, NodeState, ResolverContext, RunInfo, launch_node
from jfx.orchestrators._local import LocalDagRunner
from jfx.orchestrators._progress import LogProgress, Progress, RichProgress
from jfx.orchestrators._run import RunResult, RunState, reap_abandoned

if TYPE_CHECKING:  # imported on first use at run time (see __getattr__)
    from jfx.orchestrators._beam_runner import BeamDagRunner
    from jfx.orchestrators._kubeflow import KubeflowDagRunner

__all__ = [
    "BeamDagRunner",
    "KubeflowDagRunner",
    "LocalDagRunner",
    "LogProgress",
    "NodeOutcome",
    "NodeState",
    "Progress",
    "ResolverContext",
    "RichProgress",
    "RunInfo",
    "RunResult",
    "RunState",
    "launch_node",
    "reap_abandoned",
]


def __getattr__(name: str) -> object:
    # BeamDagRunner imports Apache Beam (about a second): load it only when asked for.
    if name == "BeamDagRunner":
        from jfx.orchestrators._beam_runner import BeamDagRunner

        globals()[name] = BeamDagRunner
        return BeamDagRunner
    # KubeflowDagRunner imports kfp when it compiles; its module alone is light, but kept out of `import jfx`.
    if name == "KubeflowDagRunner":
        from jfx.orchestrators._kubeflow import KubeflowDagRunner

        globals()[name] = KubeflowDagRunner
        return KubeflowDagRunner
    raise AttributeError(f"module 'jfx.orchestrators' has no attribute {name!r}")
