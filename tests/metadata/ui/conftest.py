"""Fixtures of the UI tests: a small store written record by record, with real artifact files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

# Chromium is shared with the web export's tests (tests/resources/jfx_browser.py): `chromium` is the
# module-scoped fixture, CHROMIUM and CHROMIUM_ARGS are what screenshots.py launches
from jfx_browser import CHROMIUM, CHROMIUM_ARGS, chromium, launch_chromium  # noqa: F401

from jfx.metadata import (
    NODE,
    PIPELINE,
    PIPELINE_RUN,
    ArtifactRecord,
    ContextRecord,
    ExecutionRecord,
    ExecutionState,
    MetadataStore,
)
from jfx.metadata.ui import UIApp

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@dataclass
class Fake:
    url: str
    root: Path
    ids: dict


def _ir(nodes: list[tuple[str, str, dict, list[str]]]) -> dict:
    return {"ir_version": 1, "nodes": [
        {"id": nid, "component": {"name": comp},
         "inputs": {k: {"producer": p, "key": key, "type": "x", "optional": False} for k, (p, key) in inputs.items()},
         "upstream": upstream} for nid, comp, inputs, upstream in nodes]}


IR = _ir([
    ("Gen", "ExampleGen", {}, []),
    ("Stats", "StatisticsGen", {"examples": ("Gen", "examples")}, ["Gen"]),
    ("Train", "Trainer", {"statistics": ("Stats", "statistics")}, ["Stats"]),
    ("Eval", "Evaluator", {"model": ("Train", "model")}, ["Train"]),
    ("Push", "Pusher", {}, ["Eval"]),
])


def _statistics(uri: Path, shift: float) -> None:
    for split, rows in (("train", 8), ("eval", 4)):
        doc = {"split": split, "num_rows": rows, "columns": {
            "x": {"type": "float", "count": rows - 1, "missing": 1,
                  "numeric": {"min": 0.0 + shift, "max": 9.0 + shift, "mean": 4.5 + shift, "std": 2.0, "zeros": 1,
                              "quantiles": [shift + i * 0.09 for i in range(101)],
                              "histogram": {"boundaries": [shift + i * 0.9 for i in range(11)], "counts": [1] * 10},
                              "quantile_histogram": {"boundaries": [shift + i * 0.9 for i in range(11)],
                                                     "counts": [1] * 10}}},
            "kind": {"type": "string", "count": rows, "missing": 0,
                     "string": {"unique": 2, "avg_length": 1.0,
                                "top_values": [{"value": "a", "count": rows - 2}, {"value": "b", "count": 2}]}}}}
        (uri / f"Split-{split}").mkdir(parents=True)
        (uri / f"Split-{split}" / "statistics.json").write_text(json.dumps(doc))


def build_store(tmp: Path, url: str | None = None) -> Fake:
    """Pipeline "demo" with two runs and pipeline "other" with one; files under ``tmp/artifacts``.

    ``url``: an empty database (default: a new SQLite file in ``tmp``).
    """
    url = url or f"sqlite:///{tmp / 'metadata.sqlite'}"
    root = tmp / "artifacts"
    data = tmp / "data"
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("x,kind\n1,a\n")
    ids: dict = {}
    with MetadataStore(url) as store:
        demo = store.get_or_create_context(PIPELINE, "demo")
        other = store.get_or_create_context(PIPELINE, "other")
        nodes = {n: store.get_or_create_context(NODE, f"demo.{n}", parent_id=demo.id) for n in
                 ("Gen", "Stats", "Train", "Eval", "Push")}

        def run_ctx(name, parent, state, start, params, node_states=None):
            props = {"state": state, "start_time": start.isoformat(), "parameters": params, "ir": IR,
                     "pipeline_root": str(root), "runner": "local", "attempts": 1,
                     "end_time": None if state == "RUNNING" else (start + timedelta(seconds=12)).isoformat()}
            if node_states:
                props["node_states"] = node_states
            [cid] = store.put_contexts([ContextRecord(PIPELINE_RUN, name, parent_id=parent.id, properties=props)])
            return cid

        def execute(run, node, comp, state, *, inputs=None, outputs=None, start, params=None, **props):
            uri_outputs = {}
            for key, (type_name, make) in (outputs or {}).items():
                rec = ArtifactRecord(type_name, "", name=f"{node}.{key}")
                uri_outputs[key] = (rec, make)
            e = ExecutionRecord(comp, node, state=state, parameters=params or {}, cache_key=f"key-{node}",
                                start_time=start, end_time=start + timedelta(seconds=2) if state.is_terminal else None,
                                error=props.pop("error", ""),
                                properties={"pipeline": "demo", "run_id": run[1], **props})
            records = {}
            for key, (rec, make) in uri_outputs.items():
                n = len(list(root.rglob("*"))) + 1
                rec.uri = str(root / "demo" / node / key / str(n))
                Path(rec.uri).mkdir(parents=True)
                rec.fingerprint = make(Path(rec.uri)) or f"fp-{node}-{key}-{run[1]}"
                records[key] = [rec]
            store.put_execution(e, contexts=[demo.id, run[0], nodes[node].id], inputs=inputs or {}, outputs=records)
            return e, {k: v[0] for k, v in records.items()}

        # run 1: everything completes
        r1 = (run_ctx("demo-run-1", demo, "COMPLETE", T0, {"rows": 100}), "demo-run-1")
        e_gen, out = execute(r1, "Gen", "ExampleGen", ExecutionState.COMPLETE, start=T0,
                             params={"input_base": str(data), "input_pattern": "rows.csv"},
                             cache_material={"external": "csvprint"}, cache_miss_reason="no earlier run",
                             outputs={"examples": ("Examples", lambda p: (p / "part.txt").write_text("rows") and None)})
        examples = out["examples"]
        e_stats, out = execute(r1, "Stats", "StatisticsGen", ExecutionState.COMPLETE, start=T0 + timedelta(seconds=2),
                               inputs={"examples": [examples.id]}, cache_miss_reason="no earlier run",
                               outputs={"statistics": ("ExampleStatistics", lambda p: _statistics(p, 0.0))})
        stats1 = out["statistics"]

        def model_files(p: Path, acc: float) -> None:
            (p / "signature.json").write_text(json.dumps({"format": "jfx-model", "version": 1,
                                                          "inputs": {"x": {"dtype": "float32", "shape": [], "encoder": None}},
                                                          "outputs": {"probabilities": {"dtype": "float32", "shape": [2]}}}))
            (p / "weights.npz").write_bytes(b"\0" * 100)

        def run_files(p: Path) -> None:
            (p / "history.json").write_text(json.dumps({"history": {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]},
                                                        "epochs": [0, 1], "best_epoch": 1,
                                                        "weights_epoch": 1}))
            (p / "trainer.log").write_text("epoch 0: loss=1.0\nepoch 1: loss=0.5\n")

        e_train, out = execute(r1, "Train", "Trainer", ExecutionState.COMPLETE, start=T0 + timedelta(seconds=4),
                               inputs={"statistics": [stats1.id]}, params={"module_file": str(data / "model.py"), "lr": 0.1},
                               cache_miss_reason="no earlier run",
                               outputs={"model": ("Model", lambda p: model_files(p, 0.9)),
                                        "model_run": ("ModelRun", run_files)})
        model1, model_run1 = out["model"], out["model_run"]
        model1.properties = {"accuracy": 0.9, "mlflow_run_id": "abc123", "mlflow_experiment_id": "7",
                             "mlflow_tracking_uri": "sqlite:////tmp/mlflow.sqlite"}
        store.put_artifacts([model1])

        def evaluation(p: Path) -> None:
            (p / "metrics.json").write_text(json.dumps({"version": 1, "model_type": "classification", "label_key": "y",
                                                        "splits": ["eval"], "slices": [
                                                            {"slice": {}, "slice_name": "Overall",
                                                             "candidate": {"accuracy": 0.9, "auc": float("nan")},
                                                             "baseline": None}]}))

        def blessing(p: Path) -> None:
            (p / "blessing.json").write_text(json.dumps({"blessed": True, "reasons": ["accuracy 0.9 >= 0.5: passed"],
                                                         "checks": []}))

        e_eval, out = execute(r1, "Eval", "Evaluator", ExecutionState.COMPLETE, start=T0 + timedelta(seconds=6),
                              inputs={"model": [model1.id]}, cache_miss_reason="no earlier run",
                              outputs={"evaluation": ("ModelEvaluation", evaluation), "blessing": ("ModelBlessing", blessing)})
        evaluation1 = out["evaluation"]
        def report(p: Path) -> None:
            (p / "report.md").write_text("# demo\naccuracy 0.9\n")
            (p / "rows.csv").write_text("x,kind\n1,a\n2,b\n")
            (p / "summary.json").write_text(json.dumps({"rows": 2}))

        _, out = execute(r1, "Push", "Pusher", ExecutionState.COMPLETE, start=T0 + timedelta(seconds=8),
                         cache_miss_reason="no earlier run", outputs={"report": ("Report", report)})
        ids["report"] = out["report"].id

        # run 2: Gen and Stats cached, Train fails, Eval and Push skipped
        r2 = (run_ctx("demo-run-2", demo, "FAILED", T0 + timedelta(minutes=5), {"rows": 200},
                      node_states={"Eval": "skipped", "Push": "skipped"}), "demo-run-2")
        t2 = T0 + timedelta(minutes=5)
        e_gen2 = ExecutionRecord("ExampleGen", "Gen", state=ExecutionState.CACHED, parameters=e_gen.parameters,
                                 cache_key="key-Gen", start_time=t2, end_time=t2,
                                 properties={"pipeline": "demo", "run_id": "demo-run-2", "cached_from": e_gen.id})
        store.put_execution(e_gen2, contexts=[demo.id, r2[0], nodes["Gen"].id], outputs={"examples": [examples]})
        e_stats2 = ExecutionRecord("StatisticsGen", "Stats", state=ExecutionState.CACHED, cache_key="key-Stats",
                                   start_time=t2, end_time=t2,
                                   properties={"pipeline": "demo", "run_id": "demo-run-2", "cached_from": e_stats.id})
        store.put_execution(e_stats2, contexts=[demo.id, r2[0], nodes["Stats"].id],
                            inputs={"examples": [examples.id]}, outputs={"statistics": [stats1]})
        e_train2, _ = execute(r2, "Train", "Trainer", ExecutionState.FAILED, start=t2 + timedelta(seconds=1),
                              inputs={"statistics": [stats1.id]}, params={"module_file": str(data / "model.py"), "lr": 0.5},
                              cache_miss_reason="new parameter value: lr 0.1 -> 0.5",
                              error_message="ValueError: lr too large",
                              error="Traceback (most recent call last):\n  File \"model.py\", line 3\nValueError: lr too large\n")

        # run 3, of another pipeline: still RUNNING
        r3 = (run_ctx("other-run-1", other, "RUNNING", T0 + timedelta(minutes=9), {}), "other-run-1")
        ids.update(run1="demo-run-1", run2="demo-run-2", run3="other-run-1", run3_ctx=r3[0], examples=examples.id,
                   stats=stats1.id, model=model1.id, model_run=model_run1.id, evaluation=evaluation1.id,
                   gen=e_gen.id, stats_exec=e_stats.id, train=e_train.id, eval=e_eval.id, gen2=e_gen2.id,
                   stats2=e_stats2.id, train2=e_train2.id, other_ctx=other.id)
    return Fake(url, tmp, ids)


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Fake:
    return build_store(tmp_path_factory.mktemp("ui"))


@pytest.fixture
def fresh_fake(tmp_path) -> Fake:
    """A store of its own, for tests that write to it or compare its bytes."""
    return build_store(tmp_path / "own")


@pytest.fixture
def backend_app(any_store_url, tmp_path):
    """(Fake, UIApp) on a fresh database of each backend (SQLite, PostgreSQL, MariaDB)."""
    from jfx.metadata.ui import open_store_read_only

    fake = build_store(tmp_path, any_store_url)
    store = open_store_read_only(fake.url)
    yield fake, UIApp(store)
    store.close()


@pytest.fixture(scope="module")
def app(fake):
    from jfx.metadata.ui import open_store_read_only

    store = open_store_read_only(fake.url)
    yield UIApp(store, mlflow_url="http://mlflow.local:5000")
    store.close()


@pytest.fixture
def get(app):
    """GET a route of the app in-process; returns (status, parsed JSON or raw bytes, headers)."""

    def call(target: str, headers: dict | None = None):
        r = app.handle("GET", target, {k.lower(): v for k, v in (headers or {}).items()})
        body = json.loads(r.body) if r.content_type.startswith("application/json") else r.body
        return r.status, body, r.headers

    return call



# ------------------------------------------------------------------ browser tests

PENGUIN = Path(__file__).resolve().parents[3] / "examples" / "penguin" / "pipeline.py"


def _jfx(*args: str, home: Path) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}
    env["JFX_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "jfx", *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=home.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"jfx {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def build_penguin_home(home: Path) -> list[str]:
    """Two runs of examples/penguin into ``home``: the packaged CSV, then a copy with every 7th row dropped.

    Returns the run ids, oldest first.
    """
    import importlib.util
    import re

    home.mkdir(parents=True, exist_ok=True)
    first = _jfx("run", str(PENGUIN), "--progress", "log", home=home)
    csv = Path(importlib.util.find_spec("palmerpenguins").origin).parent / "data" / "penguins.csv"
    lines = csv.read_text().splitlines(keepends=True)
    fewer = home.parent / "penguins-fewer"
    fewer.mkdir(exist_ok=True)
    (fewer / "penguins.csv").write_text(lines[0] + "".join(x for i, x in enumerate(lines[1:], 1) if i % 7))
    second = _jfx("run", str(PENGUIN), "--progress", "log", "--param", f"new_data={fewer}", home=home)
    return [re.search(r"^run (\S+) of pipeline", out, re.M).group(1) for out in (first, second)]


@pytest.fixture(scope="session")
def penguin_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-penguin") / "home"
    return home, build_penguin_home(home)
