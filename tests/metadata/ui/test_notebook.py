"""jfx.notebook: the penguin notebook runs in a real Jupyter kernel, and its saved outputs draw
the web UI's viewers offline in Chromium."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from jfx_requires import importorskip

NOTEBOOK = Path(__file__).resolve().parents[3] / "examples" / "penguin" / "notebook.ipynb"
# JFX_UPDATE_SCREENSHOTS=1 writes the screenshot to docs/img (the README's); otherwise to the test's folder
DOCS_SHOT = Path(__file__).resolve().parents[3] / "docs" / "img" / "notebook.png"


def _payloads(html: str) -> list[dict]:
    """The items a notebook output draws (the JSON passed to renderNotebook)."""
    found = re.search(r"renderNotebook\(document\.getElementById\(\"[^\"]+\"\), (\{.*\}), \"", html, re.S)
    assert found, "no renderNotebook call in the output"
    return json.loads(found.group(1))["items"]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The example notebook, executed top to bottom by a real IPython kernel into a new JFX_HOME."""
    nbformat = importorskip("nbformat", hint="pip install nbformat")
    nbclient = importorskip("nbclient", hint="pip install nbclient ipykernel")
    importorskip("ipykernel", hint="pip install ipykernel")
    home = tmp_path_factory.mktemp("nbhome")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    before = dict(os.environ)
    os.environ["JFX_HOME"] = str(home)
    os.environ.pop("JFX_METADATA_URL", None)
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(home)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(before)
    return nb, home


def test_every_cell_runs_and_draws_itself_with_the_ui_viewers(executed):
    nb, home = executed
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    kinds: list[str] = []
    for cell in code[1:]:  # the first cell only imports
        [html] = [o.data["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
        assert "<script>" in html and not re.search(r"<script[^>]+src=|<link|@import|url\(\s*['\"]?https?:", html)
        for item in _payloads(html):
            kinds.append(item["data"]["kind"] if item["kind"] == "artifact" else item["kind"])
    # runs (DAG), statistics, schema, anomalies, the model, the evaluation with its blessing, lineage, run list
    for kind in ("run", "examples", "statistics", "schema", "anomalies", "model", "evaluation", "blessing",
                 "lineage", "runs"):
        assert kind in kinds, kind
    evaluation = next(i for c in code for o in c.outputs if "text/html" in o.get("data", {})
                      for i in _payloads(o.data["text/html"]) if i["kind"] == "artifact"
                      and i["data"]["kind"] == "evaluation")
    assert evaluation["data"]["artifact"]["type"] == "ModelEvaluation"
    # the notebook's runs are ordinary runs of the store: ExampleGen came from the cache after the first
    from jfx.metadata import MetadataStore

    with MetadataStore(f"sqlite:///{home / 'metadata.sqlite'}") as store:
        runs = store.get_runs("penguin-notebook")
        executions = store.get_executions(node_id="ExampleGen")
    assert [e.state.value for e in executions].count("COMPLETE") == 1
    assert len(runs) == len(code) - 3  # one per context.run


def test_the_saved_outputs_draw_offline_in_chromium(executed, chromium, tmp_path):
    nb, _ = executed
    body = "\n".join(o.data["text/html"] for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs if "text/html" in o.get("data", {}))
    page = tmp_path / "notebook.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>penguin notebook</title></head>"
                    f"<body style='max-width:1100px;margin:auto'>{body}</body></html>", encoding="utf-8")
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    view = context.new_page()
    problems: list[str] = []
    view.on("pageerror", lambda e: problems.append(str(e)))
    view.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    view.goto(page.as_uri())
    outputs = view.locator(".jfx-output")
    count = outputs.count()
    assert count == len([c for c in nb.cells if c.cell_type == "code"]) - 1  # all but the imports
    view.wait_for_function(f"document.querySelectorAll('.jfx-output[data-drawn=true]').length === {count}",
                           timeout=30_000)
    assert not problems, problems
    assert requests == [page.as_uri()]  # nothing fetched: no server, no CDN
    # the viewers drew: histograms, the schema's columns, the DAG and lineage graphs, slices of the evaluation
    assert view.locator(".statistics .stat-col").count() >= 8
    assert view.locator(".statistics svg").count() >= 5
    assert view.locator("svg.graph .node").count() >= 6
    assert view.get_by_text("island", exact=True).count() >= 1
    assert view.locator("[data-kind=artifact]").filter(has_text="ModelEvaluation").count() >= 1
    view.locator("[data-kind=artifact]").filter(has_text="ExampleStatistics").first.scroll_into_view_if_needed()
    shot = DOCS_SHOT if os.environ.get("JFX_UPDATE_SCREENSHOTS") == "1" else tmp_path / "notebook.png"
    view.locator("[data-kind=artifact]").filter(has_text="ExampleStatistics").first.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    context.close()



def _wide_statistics(tmp_path: Path, columns: int) -> tuple[str, object]:
    """A store holding one ExampleStatistics artifact of ``columns`` numeric columns ``c00``, ``c01``, ..."""
    from jfx.metadata import ArtifactRecord, ExecutionRecord, ExecutionState, MetadataStore

    uri = tmp_path / "statistics"
    (uri / "Split-train").mkdir(parents=True)
    numeric = {"min": 0.0, "max": 9.0, "mean": 4.5, "std": 2.0, "zeros": 1, "quantiles": [i * 0.09 for i in range(101)],
               "histogram": {"boundaries": [i * 0.9 for i in range(11)], "counts": [1] * 10}}
    doc = {"split": "train", "num_rows": 10,
           "columns": {f"c{i:02d}": {"type": "float", "count": 10, "missing": 0, "numeric": numeric}
                       for i in range(columns)}}
    (uri / "Split-train" / "statistics.json").write_text(json.dumps(doc))
    url = f"sqlite:///{tmp_path / 'metadata.sqlite'}"
    record = ArtifactRecord("ExampleStatistics", str(uri), name="Stats.statistics", properties={"split_names": ["train"]})
    with MetadataStore(url) as store:
        store.put_execution(ExecutionRecord("StatisticsGen", "Stats", state=ExecutionState.COMPLETE),
                            outputs={"statistics": [record]})
        [stored] = store.get_artifacts()
    return url, stored


def test_a_wide_statistics_output_is_paged_twelve_columns_at_a_time(chromium, tmp_path):
    from jfx.notebook import ArtifactView

    url, record = _wide_statistics(tmp_path, 30)
    page = tmp_path / "wide.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body>"
                    f"{ArtifactView(url, record)._repr_html_()}</body></html>", encoding="utf-8")
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    view = context.new_page()
    problems: list[str] = []
    view.on("pageerror", lambda e: problems.append(str(e)))
    view.goto(page.as_uri())
    stats = view.locator(".statistics").first
    stats.locator(".pager-next").wait_for()

    def shown() -> list[str]:
        return stats.locator(".stat-col:visible").evaluate_all("cols => cols.map(c => c.dataset.column)")

    assert stats.locator(".stat-col").count() == 30 and shown() == [f"c{i:02d}" for i in range(12)]
    assert "1–12 of 30" in stats.locator(".pager-label").inner_text()
    stats.locator(".pager-next").click()
    assert shown() == [f"c{i:02d}" for i in range(12, 24)]
    stats.locator(".pager-next").click()
    assert shown() == [f"c{i:02d}" for i in range(24, 30)] and stats.locator(".pager-next").is_disabled()
    stats.locator(".pager-prev").click()
    assert shown()[0] == "c12" and problems == []
    context.close()
