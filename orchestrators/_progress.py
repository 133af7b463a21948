"""Progress of a run: a live per-node table on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from jfx.orchestrators._launcher import NodeOutcome, NodeState

__all__ = ["Progress", "LogProgress", "RichProgress", "make_progress"]

log = logging.getLogger("jfx.run")

_STYLE: dict[str, str] = {
    NodeState.PENDING: "dim",
    NodeState.RUNNING: "bold yellow",
    NodeState.COMPLETE: "green",
    NodeState.CACHED: "cyan",
    NodeState.REUSED: "cyan",
    NodeState.FAILED: "bold red",
    NodeState.SKIPPED: "magenta",
    NodeState.CANCELLED: "red",
    NodeState.ABANDONED: "red",
}


class Progress:
    """Silent progress; the base of the others."""

    def start(self, pipeline: str, run_id: str, node_ids: list[str], done: dict[str, NodeOutcome]) -> None:
        pass

    def node_started(self, node_id: str) -> None:
        pass

    def node_finished(self, outcome: NodeOutcome) -> None:
        pass

    def nodes_replaced(self, old: list[str], new: list[str]) -> None:
        """A dynamic ForEach was expanded: its templates ``old`` are now the copies ``new``."""

    def finish(self, state: str) -> None:
        pass


class LogProgress(Progress):
    """One log line (logger ``jfx.run``) per node start and end."""

    def start(self, pipeline: str, run_id: str, node_ids: list[str], done: dict[str, NodeOutcome]) -> None:
        log.info("run %s of pipeline %s: %d nodes (%d done earlier)", run_id, pipeline, len(node_ids), len(done))
        for outcome in done.values():
            if outcome.state == NodeState.REUSED:
                log.info("%s: %s", outcome.node_id, _reused(outcome))

    def node_started(self, node_id: str) -> None:
        log.info("%s: running", node_id)

    def node_finished(self, outcome: NodeOutcome) -> None:
        detail = f" ({outcome.error})" if outcome.error else " (halted the pipeline)" if outcome.halted else ""
        log.info("%s: %s in %.2fs%s", outcome.node_id, outcome.state, outcome.duration_s, detail)

    def nodes_replaced(self, old: list[str], new: list[str]) -> None:
        log.info("ForEach: %s made into %d node(s)%s", ", ".join(old), len(new), f": {', '.join(new)}" if new else "")

    def finish(self, state: str) -> None:
        log.info("run finished: %s", state)


class RichProgress(Progress):
    """A live table of node states on the terminal (stderr), redrawn as nodes move."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._live: Any = None
        self._states: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._notes: dict[str, str] = {}
        self._title = ""

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=self._title, title_justify="left", box=None, pad_edge=False)
        table.add_column("node")
        table.add_column("state")
        table.add_column("time", justify="right")
        table.add_column("")
        now = time.monotonic()
        for node_id, state in self._states.items():
            started = self._started.get(node_id)
            elapsed = f"{now - started:.1f}s" if state == NodeState.RUNNING and started else self._notes.get(f"{node_id}:t", "")
            table.add_row(node_id, f"[{_STYLE.get(state, '')}]{state}", elapsed, self._notes.get(node_id, ""))
        return table

    def start(self, pipeline: str, run_id: str, node_ids: list[str], done: dict[str, NodeOutcome]) -> None:
        from rich.live import Live

        self._title = f"{pipeline} · run {run_id}"
        self._states = {n: (done[n].state if n in done else NodeState.PENDING) for n in node_ids}
        self._notes.update({n: _reused(o) for n, o in done.items() if o.state == NodeState.REUSED})
        self._live = Live(get_renderable=self._render, console=self._console, refresh_per_second=8, transient=False)
        self._live.start()

    def node_started(self, node_id: str) -> None:
        self._states[node_id] = NodeState.RUNNING
        self._started[node_id] = time.monotonic()

    def node_finished(self, outcome: NodeOutcome) -> None:
        self._states[outcome.node_id] = outcome.state
        self._notes[f"{outcome.node_id}:t"] = f"{outcome.duration_s:.2f}s" if outcome.duration_s else ""
        if outcome.error or outcome.halted:
            self._notes[outcome.node_id] = (outcome.error or "halted the pipeline")[:100]

    def nodes_replaced(self, old: list[str], new: list[str]) -> None:
        states: dict[str, str] = {}
        for node_id, state in self._states.items():
            if old and node_id == old[0]:
                states.update({n: self._states.get(n, NodeState.PENDING) for n in new})
            if node_id not in old:
                states[node_id] = state
        self._states = states

    def finish(self, state: str) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _reused(outcome: NodeOutcome) -> str:
    return f"reused from run {outcome.reused_from_run}"


def make_progress(mode: str | bool | Progress | None) -> Progress:
    """``"auto"``/None: a live table when stderr is a terminal, else log lines; False: silent."""
    if isinstance(mode, Progress):
        return mode
    if mode is False or mode == "none":
        return Progress()
    if mode == "log":
        return LogProgress()
    if mode == "rich" or (mode in (None, True, "auto") and sys.stderr.isatty()):
        return RichProgress()
    return LogProgress()
