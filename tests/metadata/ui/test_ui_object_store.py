"""``jfx ui`` over a pipeline root on object storage: files and logs streamed from the store.

The hello pipeline runs with an ``s3://`` root on the test S3 server; the UI, served over
HTTP on 127.0.0.1, lists and serves its artifacts' files and its nodes' logs from there,
and refuses anything outside the recorded URIs.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

import jfx
from jfx import _storage as storage
from jfx.metadata import MetadataStore
from jfx.metadata.ui import UIApp, UIServer, open_store_read_only
from jfx.metadata.ui._files import CHUNK

HELLO = Path(jfx.__file__).parent / "examples" / "hello" / "pipeline.py"


def _hello():
    spec = importlib.util.spec_from_file_location("hello_pipeline_ui_s3", HELLO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def s3_run(tmp_path, s3_root):
    """The hello pipeline run once with an s3:// root: (metadata URL, root, node id → execution, outputs)."""
    from jfx.orchestrators import LocalDagRunner

    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    result = LocalDagRunner(progress=False).run(_hello().create_pipeline(pipeline_root=s3_root, metadata_url=url))
    assert result.state == "COMPLETE"
    with MetadataStore(url) as store:
        found = {}
        for node in ("make_data", "summarize", "write_report"):
            eid = result.nodes[node].execution_id
            _, outputs = store.get_execution_artifacts(eid)
            found[node] = (eid, {k: v[0] for k, v in outputs.items()})
    return url, s3_root, found


def _get(ui: UIServer, target: str) -> tuple[int, bytes, dict[str, str]]:
    """One GET with the path sent exactly as given (no client-side normalisation of ``..``)."""
    split = urlsplit(ui.url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def test_the_ui_lists_and_serves_artifact_files_and_logs_from_the_store(s3_run):
    url, root, found = s3_run
    report_eid, report_out = found["write_report"]
    report = report_out["report"]
    assert report.uri.startswith(root + "/hello/write_report/report/")
    with UIServer(url, port=0) as ui:
        status, body, _ = _get(ui, f"/api/artifacts/{report.id}")
        page = json.loads(body)
        assert status == 200 and page["exists"] is True and page["uri"] == report.uri
        assert [f["path"] for f in page["files"]] == ["report.md"]

        status, body, headers = _get(ui, f"/api/artifacts/{report.id}/files/report.md")
        assert status == 200 and headers["content-type"].startswith("text/")
        assert body == storage.read_bytes(storage.join(report.uri, "report.md")) and b"# hello, jfx" in body
        status, body, _ = _get(ui, "/api/files?path=" + quote(storage.join(report.uri, "report.md")))
        assert status == 200 and b"# hello, jfx" in body
        status, body, _ = _get(ui, f"/api/artifacts/{report.id}/files/")
        assert status == 200 and json.loads(body)["entries"] == ["report.md"]

        summary = found["summarize"][1]["summary"]
        view = json.loads(_get(ui, f"/api/artifacts/{summary.id}/view")[1])
        assert view["kind"] == "value" or any(f["path"] == "summary.json" for f in view["data"]["files"])

        # the node's captured log, uploaded to <root>/hello/.logs/<node>/<id>.log
        execution = json.loads(_get(ui, f"/api/executions/{report_eid}")[1])
        log_uri = execution["properties"]["log_uri"]
        assert log_uri == f"{root}/hello/.logs/write_report/{report_eid}.log"
        status, body, _ = _get(ui, f"/api/executions/{report_eid}/log")
        assert status == 200 and body == storage.read_bytes(log_uri)
        assert execution["logs"][0]["output"] == "execution"


def test_the_ui_refuses_uris_outside_recorded_artifacts_on_the_store(s3_run):
    url, root, found = s3_run
    report = found["write_report"][1]["report"]
    data_eid, data_out = found["make_data"]
    # objects beside the artifact: a sibling whose name starts with the artifact's id, and one
    # at the root; neither is inside a recorded URI
    sibling = f"{report.uri}0/report.md"
    storage.write_bytes(sibling, b"not an artifact")
    storage.write_bytes(f"{root}/secret.txt", b"secret")
    with UIServer(url, port=0) as ui:
        assert _get(ui, "/api/files?path=" + quote(sibling))[0] == 403
        assert _get(ui, "/api/files?path=" + quote(f"{root}/secret.txt"))[0] == 403
        assert _get(ui, "/api/files?path=" + quote(f"{report.uri}/../../../secret.txt"))[0] == 403
        assert _get(ui, "/api/files?path=" + quote(f"{report.uri}/../{report.uri.rsplit('/', 1)[1]}0/report.md"))[0] == 403
        assert _get(ui, f"/api/artifacts/{report.id}/files/../{report.uri.rsplit('/', 1)[1]}0/report.md")[0] == 403
        assert _get(ui, f"/api/artifacts/{report.id}/files/../../../../secret.txt")[0] == 403
        assert _get(ui, f"/api/artifacts/{report.id}/files/missing.md")[0] == 404
        # the data artifact's own file is served through its URI, and only through it
        data_csv = storage.join(data_out["data"].uri, "data.csv")
        assert _get(ui, "/api/files?path=" + quote(data_csv))[0] == 200
        assert _get(ui, "/api/files?path=" + quote(f"gs://{root[5:]}/secret.txt"))[0] == 403
        assert _get(ui, "/api/files?path=" + quote("ftp://host/x"))[0] == 400
        # a log URI that is not where the launcher writes logs is not served
        with MetadataStore(url) as store:
            e = store.get_execution(data_eid)
            from dataclasses import replace

            store.put_execution(replace(e, properties={**e.properties, "log_uri": f"{root}/secret.txt"}))
        assert _get(ui, f"/api/executions/{data_eid}/log")[0] == 404


def test_a_large_file_on_the_store_is_streamed_in_chunks(s3_run):
    url, _, found = s3_run
    report = found["write_report"][1]["report"]
    big = os.urandom(2 * CHUNK + 12345)
    storage.write_bytes(storage.join(report.uri, "big.bin"), big)
    store = open_store_read_only(url)
    try:
        r = UIApp(store).handle("GET", f"/api/artifacts/{report.id}/files/big.bin", {})
        # only the first chunk is read before the answer starts; the rest follows chunk by chunk
        assert r.status == 200 and r.length == len(big) and len(r.body) == CHUNK
        assert r.rest is not None
        rest = list(r.rest)
        assert all(len(c) <= CHUNK for c in rest) and r.body + b"".join(rest) == big
    finally:
        store.close()
    with UIServer(url, port=0) as ui:
        status, body, headers = _get(ui, f"/api/artifacts/{report.id}/files/big.bin")
        assert status == 200 and headers["content-length"] == str(len(big)) and body == big
