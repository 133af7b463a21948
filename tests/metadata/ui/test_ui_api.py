"""The UI's JSON API, in-process and over HTTP: pages' data, errors, files, token, read-only."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from jfx.errors import InvalidArgumentError
from jfx.metadata import ExecutionState, MetadataStore
from jfx.metadata.ui import UIServer, open_store_read_only


def test_runs_list_filters_by_pipeline_state_and_id_and_pages(get, fake):
    status, body, _ = get("/api/runs")
    assert status == 200
    assert [r["id"] for r in body["runs"]] == ["other-run-1", "demo-run-2", "demo-run-1"]  # newest first
    first = body["runs"][2]
    assert first["state"] == "COMPLETE" and first["duration_s"] == 12.0 and first["parameters"] == {"rows": 100}
    assert first["pipeline"] == "demo" and body["total"] == 3
    assert [r["id"] for r in get("/api/runs?pipeline=demo")[1]["runs"]] == ["demo-run-2", "demo-run-1"]
    assert [r["id"] for r in get("/api/runs?state=failed")[1]["runs"]] == ["demo-run-2"]
    assert [r["id"] for r in get("/api/runs?q=run-1")[1]["runs"]] == ["other-run-1", "demo-run-1"]
    assert get("/api/runs?q=%25")[1]["runs"] == []  # % is searched literally
    page = get("/api/runs?limit=1&offset=1")[1]
    assert [r["id"] for r in page["runs"]] == ["demo-run-2"] and page["total"] == 3
    pipelines = get("/api/pipelines")[1]["pipelines"]
    assert [(p["name"], p["runs"]) for p in pipelines] == [("demo", 2), ("other", 1)]


def test_counts_stop_at_the_cap_and_say_so(get, monkeypatch):
    from jfx.metadata.ui import _queries

    monkeypatch.setattr(_queries, "COUNT_CAP", 1)
    body = get("/api/runs")[1]
    assert len(body["runs"]) == 3 and (body["total"], body["total_exact"]) == (3, True)  # this page counts
    body = get("/api/runs?limit=1")[1]
    assert [r["id"] for r in body["runs"]] == ["other-run-1"] and (body["total"], body["total_exact"]) == (1, False)
    body = get("/api/runs?limit=1&offset=1&state=failed")[1]
    assert body["runs"] == [] and (body["total"], body["total_exact"]) == (1, True)
    pipelines = get("/api/pipelines")[1]["pipelines"]
    assert [(p["name"], p["runs"], p["runs_exact"]) for p in pipelines] == [("demo", 1, False), ("other", 1, True)]


@pytest.mark.parametrize("target, code, words", [
    ("/api/runs?limit=abc", 400, "limit='abc'"),
    ("/api/runs?limit=0", 400, "between 1 and 500"),
    ("/api/runs?state=DONE", 400, "state='DONE'"),
    ("/api/runs/no-such-run", 404, "no run 'no-such-run'"),
    ("/api/executions/999999", 404, "999999"),
    ("/api/executions/x", 400, "not an integer"),
    ("/api/artifacts/999999", 404, "999999"),
    ("/api/lineage", 400, "artifact=ID or execution=ID"),
    ("/api/compare?runs=demo-run-1", 400, "two or more"),
    ("/api/nothing", 404, "GET /api lists them"),
    ("/nothing", 404, "no page"),
])
def test_every_error_has_one_shape(get, target, code, words):
    status, body, _ = get(target)
    assert status == code
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and words in body["error"]["message"]


def test_run_dag_has_node_states_and_edges(get, fake):
    run = get("/api/runs/demo-run-2")[1]
    states = {n["id"]: n["state"] for n in run["nodes"]}
    assert states == {"Gen": "cached", "Stats": "cached", "Train": "failed", "Eval": "skipped", "Push": "skipped"}
    train = next(n for n in run["nodes"] if n["id"] == "Train")
    assert train["error"] == "ValueError: lr too large" and train["execution_id"] == fake.ids["train2"]
    assert {(e["from"], e["to"], e["kind"]) for e in run["edges"]} == {
        ("Gen", "Stats", "data"), ("Stats", "Train", "data"), ("Train", "Eval", "data"), ("Eval", "Push", "order")}
    assert run["parameters"] == {"rows": 200} and run["live"] is False and "ir" not in run
    running = get("/api/runs/other-run-1")[1]
    assert running["live"] is True and {n["state"] for n in running["nodes"]} == {"pending"}
    execs = get("/api/runs/demo-run-1/executions?limit=2&offset=1")[1]
    assert execs["total"] == 5 and [e["node_id"] for e in execs["executions"]] == ["Eval", "Train"]


def test_execution_shows_cache_hit_miss_error_logs_and_external_inputs(get, fake):
    hit = get(f"/api/executions/{fake.ids['gen2']}")[1]
    assert hit["cache"]["hit"] is True and hit["cache"]["source"]["id"] == fake.ids["gen"]
    assert hit["cache"]["source"]["run_id"] == "demo-run-1"
    failed = get(f"/api/executions/{fake.ids['train2']}")[1]
    assert failed["state"] == "FAILED" and failed["cache"]["miss_reason"] == "new parameter value: lr 0.1 -> 0.5"
    assert failed["error_message"] == "ValueError: lr too large" and "Traceback" in failed["traceback"]
    assert failed["parameters"]["lr"] == 0.5 and failed["inputs"]["statistics"][0]["id"] == fake.ids["stats"]
    train = get(f"/api/executions/{fake.ids['train']}")[1]
    assert train["duration_s"] == 2.0 and set(train["outputs"]) == {"model", "model_run"}
    [log] = train["logs"]
    assert log["path"] == "trainer.log" and "epoch 1: loss=0.5" in log["text"]
    assert [x["parameter"] for x in train["external_inputs"]] == ["module_file"]
    gen = get(f"/api/executions/{fake.ids['gen']}")[1]
    [csv] = gen["external_inputs"]
    assert csv["name"] == "rows.csv" and csv["path"].endswith("data/rows.csv") and csv["fingerprint"] == "csvprint"


def test_artifact_has_producer_consumers_runs_and_files(get, fake):
    a = get(f"/api/artifacts/{fake.ids['stats']}")[1]
    assert a["type"] == "ExampleStatistics" and a["viewer"] == "statistics"
    assert a["producer"]["id"] == fake.ids["stats_exec"] and a["cached_reuses"] == 1  # run 2's cache hit
    assert sorted(c["id"] for c in a["consumers"]) == [fake.ids["train"], fake.ids["train2"]]
    assert a["consumers_total"] == 2 and {r["id"] for r in a["runs"]} == {"demo-run-1", "demo-run-2"}
    assert sorted(f["path"] for f in a["files"]) == ["Split-eval/statistics.json", "Split-train/statistics.json"]
    listed = get("/api/artifacts?type=ExampleStatistics&name=Stats.statistics")[1]
    assert [(x["id"], x["run_id"]) for x in listed["artifacts"]] == [(fake.ids["stats"], "demo-run-1")]


def test_lineage_walks_up_and_down_across_runs_and_folds_cache_hits(get, fake):
    g = get(f"/api/lineage?artifact={fake.ids['model']}&up=all&down=0")[1]
    ids = {n["id"] for n in g["nodes"]}
    assert g["center"] == f"a{fake.ids['model']}"
    assert {f"e{fake.ids['train']}", f"a{fake.ids['stats']}", f"e{fake.ids['gen']}", f"a{fake.ids['examples']}"} <= ids
    csv = [n for n in g["nodes"] if n["kind"] == "external" and n["label"] == "rows.csv"]
    assert len(csv) == 1 and {"from": csv[0]["id"], "to": f"e{fake.ids['gen']}", "key": "input_base"} in g["edges"]
    # run 2's cache hits of Gen and Stats are folded into the executions they reused
    assert f"e{fake.ids['gen2']}" not in ids and f"e{fake.ids['stats2']}" not in ids
    stats_exec = next(n for n in g["nodes"] if n["id"] == f"e{fake.ids['stats_exec']}")
    assert stats_exec["cached_reuses"] == 1
    one = get(f"/api/lineage?artifact={fake.ids['stats']}&up=1&down=1")[1]
    kinds = {n["id"]: n["kind"] for n in one["nodes"]}
    assert kinds[f"e{fake.ids['train']}"] == "execution" and f"e{fake.ids['gen']}" not in kinds
    assert f"e{fake.ids['train2']}" in kinds  # downstream in another run
    ex = get(f"/api/lineage?execution={fake.ids['train']}")[1]
    assert {n["id"] for n in ex["nodes"]} >= {f"a{fake.ids['stats']}", f"a{fake.ids['model']}", f"a{fake.ids['model_run']}"}
    assert get(f"/api/lineage?artifact={fake.ids['model']}&up=-1")[0] == 400


def test_typed_viewers(get, fake):
    stats = get(f"/api/artifacts/{fake.ids['stats']}/view")[1]
    assert stats["kind"] == "statistics" and list(stats["data"]["splits"]) == ["eval", "train"]
    x = stats["data"]["splits"]["train"]["columns"]["x"]["numeric"]
    assert len(x["quantiles"]) == 101 and x["histogram"]["counts"] == [1] * 10
    model = get(f"/api/artifacts/{fake.ids['model']}/view")[1]
    assert model["kind"] == "model" and model["data"]["signature"]["inputs"]["x"]["dtype"] == "float32"
    assert model["data"]["size_bytes"] > 100
    assert model["data"]["mlflow"]["url"] == "http://mlflow.local:5000/#/experiments/7/runs/abc123"
    assert model["data"]["training"]["history"]["val_loss"] == [1.1, 0.6]
    assert model["data"]["training"]["weights_epoch"] == 1  # the epoch the model's weights and metrics are from
    ev = get(f"/api/artifacts/{fake.ids['evaluation']}/view")[1]
    assert ev["kind"] == "evaluation" and ev["data"]["blessing"]["blessed"] is True
    assert ev["data"]["metrics"]["slices"][0]["candidate"]["auc"] is None  # NaN is sent as null
    run = get(f"/api/artifacts/{fake.ids['model_run']}/view")[1]
    assert run["kind"] == "model_run" and "epoch 0" in run["data"]["log"]
    assert get(f"/api/artifacts/{fake.ids['examples']}/view")[1]["kind"] == "examples"
    files = get(f"/api/artifacts/{fake.ids['report']}/view")[1]  # a custom type: its text files
    assert files["kind"] == "files"
    assert {f["path"]: f.get("json", f["text"]) for f in files["data"]["files"]} == {
        "report.md": "# demo\naccuracy 0.9\n", "rows.csv": "x,kind\n1,a\n2,b\n", "summary.json": {"rows": 2}}


def test_compare_diffs_parameters_metrics_and_fingerprints(get, fake):
    c = get("/api/compare?runs=demo-run-1,demo-run-2")[1]
    assert [r["id"] for r in c["runs"]] == ["demo-run-1", "demo-run-2"]
    assert c["parameters"] == [{"name": "rows", "values": [100, 200], "differs": True}]
    assert {"node": "Train", "name": "lr", "values": [0.1, 0.5], "differs": True} in c["node_parameters"]
    acc = next(m for m in c["metrics"] if m["node"] == "Train" and m["name"] == "accuracy")
    assert acc["values"] == [0.9, None]
    stats = next(a for a in c["artifacts"] if a["node"] == "Stats")
    assert stats["changed"] is False and stats["ids"] == [fake.ids["stats"]] * 2
    model = next(a for a in c["artifacts"] if a["node"] == "Train" and a["output"] == "model")
    assert model["changed"] is True and model["ids"][1] is None
    assert next(n for n in c["nodes"] if n["node"] == "Train")["states"] == ["complete", "failed"]
    assert get("/api/compare?runs=demo-run-1,nope")[0] == 404


def test_files_are_served_only_from_inside_artifact_uris(get, fake, app):
    status, body, headers = get(f"/api/artifacts/{fake.ids['model_run']}/files/trainer.log")
    assert status == 200 and b"epoch 0" in body and "sandbox" in headers["Content-Security-Policy"]
    for rel in ("../../../../../metadata.sqlite", "..%2F..%2F..%2F..%2F..%2Fmetadata.sqlite", "/etc/passwd"):
        status, body, _ = get(f"/api/artifacts/{fake.ids['model_run']}/files/{rel}")
        assert status == 403 and body["error"]["code"] == 403, rel
    # a symbolic link inside an artifact that points outside it is refused too
    uri = Path(app.store.get_artifact(fake.ids["model_run"]).uri)
    link = uri / "escape"
    if not link.exists():
        link.symlink_to(fake.root / "metadata.sqlite")
    assert get(f"/api/artifacts/{fake.ids['model_run']}/files/escape")[0] == 403
    assert get(f"/api/files?path={uri / 'history.json'}")[0] == 200
    assert get(f"/api/files?path={uri}/../../../../../metadata.sqlite")[0] == 403
    assert get(f"/api/files?path={fake.root / 'metadata.sqlite'}")[0] == 403
    assert get("/api/files?path=relative/path")[0] == 400
    assert get(f"/api/artifacts/{fake.ids['model_run']}/files/missing.txt")[0] == 404


def _db_digest(url: str) -> str:
    path = Path(url.removeprefix("sqlite:///"))
    return "".join(hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.parent.glob(path.name + "*"))
                   if p.suffix != ".sqlite-shm")


def test_the_ui_never_writes_to_the_store(fresh_fake, tmp_path):
    fake = fresh_fake
    before = _db_digest(fake.url)
    with UIServer(fake.url, port=0) as ui:
        for route in ("api/runs", "api/runs/demo-run-1", f"api/executions/{fake.ids['train']}",
                      f"api/artifacts/{fake.ids['model']}", f"api/artifacts/{fake.ids['stats']}/view",
                      f"api/lineage?artifact={fake.ids['model']}&up=all&down=all", "api/compare?runs=demo-run-1,demo-run-2"):
            assert urllib.request.urlopen(ui.url + route).status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(ui.url + "api/runs", data=b"{}", method="POST"))
        assert err.value.code == 405
    assert _db_digest(fake.url) == before
    missing = tmp_path / "nothing" / "metadata.sqlite"
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        open_store_read_only(f"sqlite:///{missing}")
    assert not missing.parent.exists()  # the UI created nothing


def _fetch(url: str, headers: dict | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def test_token_protects_every_route(fake):
    with UIServer(fake.url, port=0, token="s3cret") as ui:
        for route in ("", "runs", "runs/demo-run-1", "static/app.js", "api/runs", f"api/artifacts/{fake.ids['model_run']}/files/trainer.log"):
            status, body, _ = _fetch(ui.url + route)
            assert status == 401 and json.loads(body)["error"]["code"] == 401, route
            assert _fetch(ui.url + route, {"Authorization": "Bearer wrong"})[0] == 401
            assert _fetch(ui.url + route, {"Authorization": "Bearer s3cret"})[0] == 200, route
        assert _fetch(ui.url + "api/runs?token=s3cret")[0] == 200
        # a page opened with ?token= sets a cookie and drops the token from the address
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(ui.url + "runs?token=s3cret&state=FAILED") as r:
            assert r.status == 200 and r.url.endswith("/runs?state=FAILED")
        with opener.open(ui.url + "api/runs") as r:
            assert r.status == 200


def test_server_serves_pages_static_files_and_refuses_foreign_hosts(fake):
    with UIServer(fake.url, port=0) as ui:
        assert ui.url.startswith("http://127.0.0.1:")
        status, body, headers = _fetch(ui.url + "runs/demo-run-1")
        assert status == 200 and re.search(rb'src="/static/v-[0-9a-f]{16}/app.js"', body)
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        status, body, headers = _fetch(ui.url + "static/pages/run.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert _fetch(ui.url + "static/../_server.py")[0] == 404
        assert _fetch(ui.url + "api/runs", {"Host": "evil.example:80"})[0] == 403  # DNS rebinding
        api = json.loads(_fetch(ui.url + "api")[1])
        assert any(r["route"].startswith("GET /api/lineage") for r in api["routes"])


def test_live_run_page_data_follows_the_store(fresh_fake):
    fake = fresh_fake
    store = open_store_read_only(fake.url)
    from jfx.metadata.ui import UIApp

    app = UIApp(store)
    assert json.loads(app.handle("GET", "/api/runs/other-run-1", {}).body)["live"] is True
    with MetadataStore(fake.url) as writer:  # the runner, in another process in real life
        e = writer.get_execution(fake.ids["gen"])
        running = replace(e, id=None, state=ExecutionState.RUNNING, end_time=None,
                          properties={"run_id": "other-run-1", "pipeline": "other"})
        writer.put_execution(running, contexts=[fake.ids["run3_ctx"]])
        first = json.loads(app.handle("GET", "/api/runs/other-run-1", {}).body)
        assert {n["id"]: n["state"] for n in first["nodes"]}["Gen"] == "running"
        writer.put_execution(replace(running, state=ExecutionState.COMPLETE))
        writer.update_context_properties(fake.ids["run3_ctx"], {"state": "COMPLETE", "end_time": "2026-01-02T03:20:00+00:00"})
    after = json.loads(app.handle("GET", "/api/runs/other-run-1", {}).body)
    assert {n["id"]: n["state"] for n in after["nodes"]}["Gen"] == "complete" and after["live"] is False
    store.close()


def test_jfx_ui_imports_no_heavy_library():
    code = ("import sys, jfx.cli\nfrom jfx.metadata.ui import UIServer\n"
            "heavy = [m for m in ('jax', 'apache_beam', 'mlflow', 'kfp', 'pandas') if m in sys.modules]\n"
            "assert not heavy, heavy\nprint('ok')")
    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cli_ui_starts_and_answers(fake):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "jfx", "ui", "--metadata-url", fake.url, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line + proc.stderr.read()
        for _ in range(100):
            assert proc.poll() is None, f"jfx ui exited with {proc.returncode}: {proc.stderr.read()}"
            try:
                status, body, _ = _fetch(f"http://127.0.0.1:{port}/api/pipelines")
            except urllib.error.URLError:
                time.sleep(0.1)
                continue
            assert status == 200 and json.loads(body)["pipelines"], body
            break
        else:
            pytest.fail(f"jfx ui never answered on port {port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_static_files_under_the_pages_version_are_cached_for_good(tmp_path, monkeypatch, fake):
    from jfx.metadata.ui import _server

    static = tmp_path / "static"
    for path in _server.STATIC_DIR.rglob("*"):
        if path.is_file():
            (static / path.relative_to(_server.STATIC_DIR)).parent.mkdir(parents=True, exist_ok=True)
            (static / path.relative_to(_server.STATIC_DIR)).write_bytes(path.read_bytes())
    monkeypatch.setattr(_server, "STATIC_DIR", static)
    store = open_store_read_only(fake.url)
    app = _server.UIApp(store)

    def version():
        page = app.handle("GET", "/runs", {})
        assert page.headers["Cache-Control"] == "no-cache"  # the page itself is always revalidated
        found = set(re.findall(rb'"/static/v-([0-9a-f]{16})/', page.body))
        assert len(found) == 1, page.body
        return found.pop().decode()

    old = version()
    answer = app.handle("GET", f"/static/v-{old}/pages/runs.js", {})
    assert answer.status == 200 and "immutable" in answer.headers["Cache-Control"]
    assert app.handle("GET", "/static/pages/runs.js", {}).headers["Cache-Control"] == "no-cache"
    assert app.handle("GET", f"/static/v-{old}/../_server.py", {}).status == 404
    # a changed file changes every address; the old one still answers, with today's file, uncached
    (static / "pages" / "runs.js").write_text((static / "pages" / "runs.js").read_text() + "\n// changed\n")
    new = version()
    assert new != old
    stale = app.handle("GET", f"/static/v-{old}/pages/runs.js", {})
    assert stale.status == 200 and stale.body.endswith(b"// changed\n") and stale.headers["Cache-Control"] == "no-cache"
    store.close()


def test_each_page_preloads_its_modules_and_first_api_answers(get):
    def links(target):
        status, body, headers = get(target)
        assert status == 200 and headers["Content-Security-Policy"], target
        text = body if isinstance(body, str) else body.decode()
        return (re.findall(r'<link rel="preload" as="fetch" crossorigin href="([^"]+)">', text),
                [re.sub(r"^/static/v-[0-9a-f]{16}/", "", m)
                 for m in re.findall(r'<link rel="modulepreload" href="([^"]+)">', text)])

    assert links("/runs") == (["/api/pipelines", "/api/runs?limit=50&amp;offset=0"],
                              ["lib/dom.js", "app.js", "lib/charts.js", "pages/runs.js"])
    fetches, _ = links("/runs?pipeline=a%20b~*&state=failed&q=x&offset=60junk&deleted=1&metrics=m")
    assert fetches[1] == "/api/runs?limit=50&amp;offset=60&amp;pipeline=a+b%7E*&amp;state=failed&amp;q=x&amp;deleted=1"
    assert links("/runs/a%20b") == (["/api/runs/a%20b"],
                                    ["lib/dom.js", "app.js", "lib/graph.js", "pages/execution.js", "pages/run.js"])
    assert links("/executions/7")[0] == ["/api/executions/7"]
    assert links("/artifacts/3")[0] == ["/api/lineage?artifact=3&amp;up=2&amp;down=1", "/api/artifacts/3",
                                        "/api/artifacts/3/view"]
    assert "lib/viewers.js" in links("/artifacts/3")[1]
    assert links("/compare?runs=a,b") == ([], ["lib/dom.js", "app.js", "lib/charts.js", "pages/compare.js"])


def test_the_front_end_fetches_nothing_from_the_internet():
    import re

    from jfx.metadata.ui._server import STATIC_DIR

    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".html", ".js", ".css", ".svg"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{path.name} refers to {urls}"
        assert "@import" not in text and "@font-face" not in text, path.name


def test_every_page_works_on_every_backend(backend_app):
    fake, app = backend_app

    def get(target):
        r = app.handle("GET", target, {})
        assert r.status == 200, (target, r.body)
        return json.loads(r.body)

    assert [r["id"] for r in get("/api/runs?pipeline=demo&state=COMPLETE&q=run")["runs"]] == ["demo-run-1"]
    assert get("/api/runs?limit=2")["total"] == 3
    assert get("/api/runs")["runs"][-1]["parameters"] == {"rows": 100}
    assert [(p["name"], p["runs"]) for p in get("/api/pipelines")["pipelines"]] == [("demo", 2), ("other", 1)]
    assert {n["id"]: n["state"] for n in get("/api/runs/demo-run-2")["nodes"]}["Train"] == "failed"
    assert get(f"/api/executions/{fake.ids['gen2']}")["cache"]["source"]["id"] == fake.ids["gen"]
    assert get(f"/api/artifacts/{fake.ids['stats']}")["consumers_total"] == 2
    lineage = get(f"/api/lineage?artifact={fake.ids['model']}&up=all&down=all")
    assert any(n["label"] == "rows.csv" for n in lineage["nodes"])
    assert get("/api/compare?runs=demo-run-1,demo-run-2")["parameters"][0]["values"] == [100, 200]
    assert get(f"/api/artifacts/{fake.ids['stats']}/view")["kind"] == "statistics"


def test_an_execution_shows_what_its_component_printed_and_logged(tmp_path, any_root):
    import jfx_flow as flow

    from jfx import Pipeline
    from jfx.metadata.ui import UIApp
    from jfx.orchestrators import LocalDagRunner

    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    ok, bad = flow.chatty(text="fine").with_id("ok"), flow.chatty(text="broken", fail=True).with_id("bad")
    result = LocalDagRunner(progress=False).run(Pipeline("logs", [ok, bad], pipeline_root=any_root,
                                                         metadata_url=url))
    store = open_store_read_only(url)
    try:
        app = UIApp(store)
        for node, words in (("ok", "printed fine"), ("bad", "printed broken")):
            eid = result.nodes[node].execution_id
            r = app.handle("GET", f"/api/executions/{eid}", {})
            body = json.loads(r.body)
            assert body["properties"]["log_uri"].startswith(any_root)  # on the store for an s3:// root
            # the component's docstring, carried in the run's IR, describes it and its arguments
            assert body["description"] == "Print, log and write ``text``."
            assert body["arg_docs"] == {"text": "what it prints and logs.", "fail": "raise after printing."}
            logs = body["logs"]
            assert logs[0]["output"] == "execution" and words in logs[0]["text"]
            assert "WARNING jfx_flow: logged" in logs[0]["text"]
            whole = app.handle("GET", f"/api/executions/{eid}/log", {})
            assert whole.status == 200 and words.encode() in whole.body
        missing = app.handle("GET", "/api/executions/999999/log", {})
        assert missing.status == 404
    finally:
        store.close()


def test_an_execution_log_outside_the_launchers_log_folders_is_not_served(fresh_fake, tmp_path):
    from jfx.metadata.ui import UIApp

    secret = tmp_path / "secret.log"
    secret.write_text("not a log of jfx")
    with MetadataStore(fresh_fake.url) as store:
        e = store.get_executions()[0]
        store.put_execution(replace(e, properties={**e.properties, "log_uri": str(secret)}))
    store = open_store_read_only(fresh_fake.url)
    try:
        app = UIApp(store)
        assert app.handle("GET", f"/api/executions/{e.id}/log", {}).status == 404
        body = json.loads(app.handle("GET", f"/api/executions/{e.id}", {}).body)
        assert all(log["output"] != "execution" for log in body["logs"])
    finally:
        store.close()


def test_what_gc_deleted_is_marked_and_its_files_are_not_served(backend_app):
    from jfx.metadata import RetentionPolicy, collect_garbage

    fake, app = backend_app
    with MetadataStore(fake.url) as store:
        report = collect_garbage(store, RetentionPolicy(run_ids=("demo-run-1",)))
        model_uri = store.get_artifact(fake.ids["model"]).uri
    deleted = {a.id for a in report.artifacts}
    # the examples and statistics stay: run 2 reused them from the cache
    assert fake.ids["model"] in deleted and {fake.ids["examples"], fake.ids["stats"]}.isdisjoint(deleted)

    def get(target):
        r = app.handle("GET", target, {})
        return r.status, json.loads(r.body)

    status, model = get(f"/api/artifacts/{fake.ids['model']}")
    assert status == 200 and model["state"] == "DELETED" and model["deleted"].startswith("deleted by gc on ")
    assert "run demo-run-1 named for deletion" in model["deleted"] and model["deleted_time"]
    assert model["files"] == [] and model["exists"] is False
    for target in (f"/api/artifacts/{fake.ids['model']}/files/signature.json",
                   f"/api/files?path={model_uri}/signature.json"):
        status, body = get(target)
        assert status == 410 and f"artifact {fake.ids['model']} was deleted by gc on" in body["error"]["message"]
    assert get(f"/api/artifacts/{fake.ids['model']}/view")[1]["kind"] == "none"
    status, kept = get(f"/api/artifacts/{fake.ids['stats']}")
    assert kept["state"] == "LIVE" and kept["deleted"] is None and kept["files"]
    outputs = get(f"/api/executions/{fake.ids['train']}")[1]["outputs"]
    assert outputs["model"][0]["deleted"].startswith("deleted by gc on ")
    lineage = get(f"/api/lineage?artifact={fake.ids['stats']}&up=0&down=1")[1]
    node = next(n for n in lineage["nodes"] if n["id"] == f"a{fake.ids['model']}")
    assert node["state"] == "DELETED" and node["deleted"].startswith("deleted by gc on ")
    # the run is hidden from the default list and counts, shown when asked for and on its own page
    assert [r["id"] for r in get("/api/runs")[1]["runs"]] == ["other-run-1", "demo-run-2"]
    with_deleted = get("/api/runs?deleted=1")[1]["runs"]
    assert [(r["id"], bool(r["deleted_time"])) for r in with_deleted] == [
        ("other-run-1", False), ("demo-run-2", False), ("demo-run-1", True)]
    assert [(p["name"], p["runs"]) for p in get("/api/pipelines")[1]["pipelines"]] == [("demo", 1), ("other", 1)]
    run = get("/api/runs/demo-run-1")[1]
    assert run["deleted_time"] and run["delete_reason"] == "gc: named for deletion"
    assert get("/api/runs?deleted=yes")[0] == 400
