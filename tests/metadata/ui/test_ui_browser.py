"""The UI in a real browser (Debian's Chromium, headless, driven by Playwright) on real penguin runs."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from jfx_requires import importorskip

from jfx.metadata import ExecutionState, MetadataStore
from jfx.metadata.ui import UIServer

expect = importorskip("playwright.sync_api", hint="pip install playwright", allow_module_level=True).expect


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    yield pg
    context.close()
    assert not errors, errors


def test_penguin_walkthrough(page, penguin_home):
    home, (run1, run2) = penguin_home
    with UIServer(f"sqlite:///{home / 'metadata.sqlite'}", port=0) as ui:
        base = ui.url.rstrip("/")
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        # the run list
        page.goto(base + "/runs")
        expect(page.locator("tr.run-row")).to_have_count(2)
        expect(page.locator("tr.run-row").first).to_contain_text(run2)  # newest first
        # the penguin run: its DAG
        page.locator(f'tr[data-run="{run1}"] a.run-link').click()
        page.wait_for_url(re.compile(f"/runs/{run1}$"))
        nodes = page.locator("#dag svg .node")
        expect(nodes).to_have_count(12)
        trainer = page.locator('#dag .node[data-id="Trainer"]')
        expect(trainer).to_have_class(re.compile(r"\bstate-complete\b"))
        # click Trainer: its execution
        trainer.click()
        panel = page.locator("#node-panel")
        expect(panel.locator("h2")).to_have_text("Trainer")
        expect(panel).to_contain_text("Ran because: no earlier run")
        expect(panel).to_contain_text("model_run/trainer.log")
        trainer_execution = panel.locator(".execution").get_attribute("data-execution")
        # open the model artifact
        panel.locator('a.artifact-link[data-key="model"]').click()
        page.wait_for_url(re.compile(r"/artifacts/\d+$"))
        expect(page.locator('#viewer[data-kind="model"]')).to_contain_text("bill_length_mm")
        expect(page.locator("#viewer")).to_contain_text("Training curves")
        expect(page.locator("#viewer svg.chart").first).to_be_visible()
        # walk the lineage back to the CSV: expand the examples Transform read
        lineage = page.locator("#lineage")
        expect(lineage.locator(".node.center")).to_have_attribute("data-label", "Model")
        examples = lineage.locator('.node[aria-label*="NewExampleGen.examples"]')
        expect(examples).to_have_count(1)
        examples.click()
        page.locator("#lineage-info button.expand").click()
        csv = lineage.locator('.node[data-label="penguins.csv"]')
        expect(csv).to_have_count(1)
        csv.click()
        expect(page.locator("#lineage-info")).to_contain_text("palmerpenguins/data/penguins.csv")
        # collapse what the expansion added, then re-centre on the Trainer's execution
        examples.click()
        page.locator("#lineage-info button.collapse").click()
        expect(csv).to_have_count(0)
        lineage.locator(f'.node[data-id="e{trainer_execution}"]').click()
        page.locator("#lineage-info button.recenter").click()
        expect(lineage.locator(".node.center")).to_have_attribute("data-label", "Trainer")
        expect(lineage.locator('.node[data-label="model.py"]')).to_have_count(1)  # its module file
        # the statistics viewer, two splits side by side
        page.goto(f"{base}/runs/{run1}?node=NewStatisticsGen")
        page.locator('#node-panel a.artifact-link[data-key="statistics"]').click()
        viewer = page.locator('#viewer[data-kind="statistics"]')
        column = viewer.locator('.stat-col[data-column="bill_length_mm"]')
        expect(column.locator(".stat-chart > svg.chart rect.bar")).to_have_count(10)
        page.select_option("#compare-with", "split:eval")
        expect(column.locator(".stat-chart > svg.chart rect.bar")).to_have_count(20)
        expect(viewer.locator(".legend").first).to_contain_text("eval")
        # ... and the same node's statistics in the other run
        other = viewer.locator("#compare-with option[value^='artifact:']")
        expect(other).to_have_count(1)
        expect(other).to_contain_text(f"of run {run2}")
        page.select_option("#compare-with", other.get_attribute("value"))
        expect(viewer.locator(".legend span")).to_have_count(2)
        expect(column.locator(".stat-chart > svg.chart rect.bar")).to_have_count(20)
        expect(column.locator(".stat-table thead th").nth(2)).to_contain_text(other.get_attribute("value").split(":")[1])
        # compare the two runs
        page.goto(base + "/runs")
        for run in (run1, run2):
            page.locator(f'tr[data-run="{run}"] input.pick').check()
        page.locator("#compare-selected").click()
        page.wait_for_url(re.compile(r"/compare\?runs="))
        expect(page.locator("#parameter-diff")).to_contain_text("new_data")
        expect(page.locator("#metric-diff")).to_contain_text("Trainer.model val_accuracy")
        expect(page.locator("#artifact-diff")).to_contain_text("changed")
        assert requested and all(u.startswith(base + "/") for u in requested), [u for u in requested if not u.startswith(base)]


def test_running_run_updates_without_a_reload(page, fresh_fake):
    fake = fresh_fake
    with UIServer(fake.url, port=0) as ui, MetadataStore(fake.url) as writer:
        page.goto(ui.url + "runs/other-run-1")
        gen = page.locator('#dag .node[data-id="Gen"]')
        expect(gen).to_have_class(re.compile(r"\bstate-pending\b"))
        expect(page.locator("#live")).to_have_text("live")
        page.evaluate("window.__same_document = true")
        template = writer.get_execution(fake.ids["gen"])
        running = replace(template, id=None, state=ExecutionState.RUNNING, end_time=None,
                          properties={"run_id": "other-run-1", "pipeline": "other"})
        writer.put_execution(running, contexts=[fake.ids["run3_ctx"]])
        expect(gen).to_have_class(re.compile(r"\bstate-running\b"), timeout=10_000)
        writer.put_execution(replace(running, state=ExecutionState.COMPLETE))
        writer.update_context_properties(fake.ids["run3_ctx"], {"state": "COMPLETE"})
        expect(gen).to_have_class(re.compile(r"\bstate-complete\b"), timeout=10_000)
        expect(page.locator(".run-head .badge").first).to_have_text("complete")
        assert page.evaluate("window.__same_document") is True  # no reload happened


def test_schema_viewer_shows_environments_and_comparators(page, penguin_home):
    home, (run1, _) = penguin_home
    with UIServer(f"sqlite:///{home / 'metadata.sqlite'}", port=0) as ui:
        page.goto(f"{ui.url.rstrip('/')}/runs/{run1}?node=SchemaGen")
        page.locator('#node-panel a.artifact-link[data-key="schema"]').click()
        viewer = page.locator('#viewer[data-kind="schema"]')
        expect(viewer).to_contain_text("Environments: TRAINING, SERVING")
        species = viewer.locator("tr", has=page.locator("strong", has_text="species"))
        expect(species).to_contain_text("not in SERVING")
        island = viewer.locator("tr", has=page.locator("strong", has_text="island"))
        expect(island).to_contain_text("infinity_norm ≤ 0.15")
        expect(viewer.locator("tr", has=page.locator("strong", has_text="body_mass_g"))).to_contain_text(
            "jensen_shannon_divergence ≤ 0.15")


def test_metric_columns_chart_and_overlaid_training_curves(page, penguin_home):
    """MLflow-style comparison: metric columns in the runs list (sortable, filterable), a chart of
    a metric across a pipeline's runs, and both runs' training curves on one chart."""
    home, (run1, run2) = penguin_home
    with UIServer(f"sqlite:///{home / 'metadata.sqlite'}", port=0) as ui:
        base = ui.url.rstrip("/")
        with MetadataStore(f"sqlite:///{home / 'metadata.sqlite'}") as store:
            from jfx.metadata.ui._common import Query
            from jfx.metadata.ui._runs import runs_json

            listed = runs_json(store, Query({}))
        by_id = {r["id"]: r["metrics"] for r in listed["runs"]}
        accuracy = {run: by_id[run]["Evaluator.accuracy"] for run in (run1, run2)}
        assert "Evaluator.accuracy" in listed["metric_names"]
        low, high = sorted((run1, run2), key=lambda r: accuracy[r])

        page.goto(base + "/runs?pipeline=penguin&metrics=Evaluator.accuracy,Trainer.val_accuracy&sort=-Evaluator.accuracy")
        expect(page.locator("#runs thead th.metric")).to_have_count(2)
        expect(page.locator("tr.run-row").first).to_have_attribute("data-run", high)
        expect(page.locator('tr.run-row td[data-metric="Evaluator.accuracy"]').first).to_have_text(
            re.compile(f"^{str(round(accuracy[high], 4))[:5]}"))
        page.locator("#runs thead th.metric a").first.click()  # the other direction
        expect(page.locator("tr.run-row").first).to_have_attribute("data-run", low if accuracy[low] != accuracy[high] else high)
        expect(page.locator("#metric-chart svg.chart")).to_have_count(2)
        expect(page.locator("#metric-chart svg.chart path.series").first).to_be_visible()
        # a filter keeps only the runs it matches; a malformed one says how to write it
        page.goto(base + f"/runs?pipeline=penguin&metrics=Evaluator.accuracy&where=Evaluator.accuracy%20%3E%20{accuracy[low]}")
        expect(page.locator("tr.run-row")).to_have_count(1 if accuracy[low] != accuracy[high] else 0)
        page.goto(base + "/runs?where=accuracy%20is%20high")
        expect(page.locator(".error")).to_contain_text("write <metric> <op> <number>")

        page.goto(base + f"/compare?runs={run1},{run2}")
        curves = page.locator("#training-curves")
        expect(curves).to_contain_text("Trainer")
        loss = curves.locator("figure").filter(has=page.locator("svg[aria-label='loss']"))
        expect(loss.locator("path.series")).to_have_count(4)  # loss and val_loss of each run
        expect(loss.locator(".legend")).to_contain_text("run 2 val_loss")
def test_what_gc_deleted_shows_as_deleted_with_no_file_links(page, fresh_fake):
    from jfx.metadata import RetentionPolicy, collect_garbage

    fake = fresh_fake
    with MetadataStore(fake.url) as store:
        collect_garbage(store, RetentionPolicy(run_ids=("demo-run-1",)))
    with UIServer(fake.url, port=0) as ui:
        page.goto(ui.url + f"artifacts/{fake.ids['model_run']}")
        expect(page.locator(".page-head .deleted-marker")).to_contain_text("deleted by gc on ")
        expect(page.locator("#files-deleted")).to_be_visible()
        expect(page.locator("a.file-link")).to_have_count(0)
        page.goto(ui.url + f"executions/{fake.ids['train']}")
        expect(page.locator(".artifacts .deleted-marker").first).to_contain_text("deleted by gc on ")
        page.goto(ui.url + "runs")
        expect(page.locator('tr.run-row[data-run="demo-run-1"]')).to_have_count(0)
        page.locator("#show-deleted").check()
        page.locator("form.filters button[type=submit]").click()
        expect(page.locator('tr.run-row.deleted[data-run="demo-run-1"] .badge.state-deleted')).to_have_text("deleted")
        page.goto(ui.url + "runs/demo-run-1")
        expect(page.locator("#run-deleted")).to_contain_text("deleted by gc on ")


def test_evaluation_viewer_draws_intervals_fairness_and_plots(page, penguin_home):
    home, (_, run2) = penguin_home  # the second run has a baseline: the first run's blessed model
    with UIServer(f"sqlite:///{home / 'metadata.sqlite'}", port=0) as ui:
        page.goto(f"{ui.url.rstrip('/')}/runs/{run2}?node=Evaluator")
        page.locator('#node-panel a.artifact-link[data-key="evaluation"]').click()
        viewer = page.locator('#viewer[data-kind="evaluation"]')
        # every metric of every slice has its 95% interval under it
        overall = viewer.locator('table.metrics tr[data-slice="Overall"]')
        expect(overall.locator('td[data-metric="accuracy"] .ci')).to_have_text(re.compile(r"^\[0\.\d+, [01](\.\d+)?\]$"))
        expect(viewer).to_contain_text("95% confidence interval (Poisson bootstrap, 20 samples, seed 0)")
        bucket = viewer.locator('table.metrics tr[data-slice^="bill_length_mm=(-inf, "]')
        expect(bucket).to_have_count(1)
        # fairness rates one-vs-rest per class, with the gap against the overall slice
        fairness = viewer.locator(".eval-fairness")
        expect(fairness.locator("thead th")).to_have_count(1 + 4 * 3)
        expect(fairness.locator('tr[data-slice="island=Biscoe"] .gap').first).to_have_text(re.compile(r"^[+-]\d"))
        page.select_option("#fairness-class", "Gentoo")
        expect(fairness.locator('tr[data-slice="island=Biscoe"] .gap').first).to_have_text(re.compile(r"^[+-]\d"))
        # plots: ROC and PR curves of candidate and baseline, and the confusion matrix as a heat map
        plots = viewer.locator(".eval-plots")
        expect(plots.locator("svg.roc path.series")).to_have_count(2)
        expect(plots.locator("svg.pr path.series")).to_have_count(2)
        expect(plots.locator("svg.heatmap rect.cell")).to_have_count(9)
        d = plots.locator("svg.roc path.series").first.get_attribute("d")
        assert d.startswith("M") and d.count("L") >= 2, d
        # another slice and class redraw them
        page.select_option("#plot-slice", label="island=Dream")
        page.select_option("#plot-class", "Chinstrap")
        expect(plots.locator("svg.roc .chart-title")).to_have_text("ROC (Chinstrap vs rest)")
        expect(plots.locator("svg.roc path.series")).to_have_count(2)
        assert plots.locator("svg.roc path.series").first.get_attribute("d") != d


def test_binary_evaluation_draws_calibration_and_interval_checks(page, tmp_path):
    """A real binary evaluation (a pipeline of the test helpers): calibration dots, one
    ROC curve per model, a 2 x 2 confusion matrix, and a bound checked on the interval."""
    import jfx_testlib as lib

    from jfx import Pipeline
    from jfx.components import Evaluator
    from jfx.orchestrators import LocalDagRunner

    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    data, model = lib.make_eval_examples(rows=300), lib.make_eval_model(bias=0.05)
    evaluator = Evaluator(examples=data.outputs["examples"], model=model.outputs["model"], eval_config={
        "label_key": "label", "slicing_specs": [["island"], {"column": "x", "boundaries": [0.5]}],
        "confidence_intervals": {"num_bootstrap_samples": 10}, "fairness": {"thresholds": [0.5]},
        "thresholds": {"accuracy": {"lower_bound": 0.5, "on": "interval"}}})
    result = LocalDagRunner(progress=False).run(Pipeline(
        "binary", components=[data, model, evaluator], pipeline_root=str(tmp_path / "root"), metadata_url=url))
    assert result.state == "COMPLETE", result.nodes["Evaluator"].error
    evaluation_id = result.nodes["Evaluator"].outputs["evaluation"][0].id
    with UIServer(url, port=0) as ui:
        page.goto(f"{ui.url.rstrip('/')}/artifacts/{evaluation_id}")
        viewer = page.locator('#viewer[data-kind="evaluation"]')
        expect(viewer.locator(".blessing")).to_contain_text("lower_bound (interval's lower end)")
        expect(viewer.locator(".blessing")).to_contain_text("the lower end of its confidence interval")
        expect(viewer.locator('table.metrics tr[data-slice="x=[0.5, inf)"]')).to_have_count(1)
        expect(viewer.locator(".eval-fairness thead th")).to_have_count(1 + 4)
        plots = viewer.locator(".eval-plots")
        expect(page.locator("#plot-class")).to_have_count(0)  # binary: the positive class
        expect(plots.locator("svg.roc path.series")).to_have_count(1)
        expect(plots.locator("svg.calibration .chart-title")).to_have_text("Calibration (yes)")
        expect(plots.locator("svg.calibration circle.dot")).to_have_count(10)
        expect(plots.locator("svg.heatmap rect.cell")).to_have_count(4)
        page.select_option("#plot-slice", label="x=(-inf, 0.5)")
        expect(plots.locator("svg.calibration circle.dot")).not_to_have_count(10)


HREFS = "(selector) => [...document.querySelectorAll(selector)].map((link) => link.getAttribute('href'))"


def test_pages_use_what_they_preload_and_fetch_nothing_twice(page, fake):
    """Each API answer a page preloads is the one its module fetches (the addresses match), and
    its modules come from the versioned, cached addresses: a second visit asks the server for none."""
    wanted = {
        "runs": "tr.run-row",
        "runs?pipeline=demo&state=failed&q=run&metrics=x": "tr.run-row",
        "runs/demo-run-1": "#dag .node",
        f"executions/{fake.ids['train']}": ".execution",
        f"artifacts/{fake.ids['model_run']}": "#lineage .node",
        "compare?runs=demo-run-1,demo-run-2": "#artifact-diff",
    }
    with UIServer(fake.url, port=0) as ui:
        served: list[str] = []  # what the page used, from the server or the browser's cache
        asked: list[str] = []  # what the server answered
        page.on("response", lambda r: served.append(r.url.removeprefix(ui.url.rstrip("/"))))
        handle = ui.app.handle
        page.add_init_script("window.__fetched = []; const f = window.fetch;"
                             "window.fetch = (url, options) => { window.__fetched.push(String(url)); return f(url, options); };")
        ui.app.handle = lambda method, target, headers: asked.append(target) or handle(method, target, headers)  # type: ignore[method-assign]
        for target, ready in wanted.items():
            for load in ("first", "again"):
                served.clear()
                asked.clear()
                page.goto(ui.url + target, wait_until="networkidle")
                expect(page.locator(ready).first).to_be_attached()
                preloaded = set(page.evaluate(HREFS, "link[rel=preload][as=fetch]"))
                assert preloaded or target.startswith("compare"), target
                assert preloaded <= set(page.evaluate("window.__fetched")), (target, preloaded)  # each one used
                api = [u for u in served if u.startswith("/api/")]
                assert len(api) == len(set(api)), (target, api)  # nothing fetched twice
                modules = set(page.evaluate(HREFS, "link[rel=modulepreload]"))
                scripts = {u for u in served if u.endswith(".js")}
                assert scripts and scripts <= modules, (target, scripts - modules)  # no module found late
                if load == "again":
                    assert not [u for u in asked if u.startswith("/static/")], (target, asked)
