"""Screenshots of the main pages of `jfx ui` for docs/img/ (used by docs/ui.md and the README).

    .venv/bin/python tests/metadata/ui/screenshots.py [--home DIR] [--out docs/img]

Without ``--home`` it runs examples/penguin twice into a temporary JFX_HOME (the packaged
CSV, then a copy with fewer rows) and photographs those runs in headless Chromium.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))  # jfx_browser, which conftest imports
from conftest import CHROMIUM, CHROMIUM_ARGS, build_penguin_home  # this folder's conftest.py

from jfx.metadata import MetadataStore
from jfx.metadata.ui import UIServer

REPO = Path(__file__).resolve().parents[3]


def shoot(home: Path, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    url = f"sqlite:///{home / 'metadata.sqlite'}"
    with MetadataStore(url) as store:
        runs = [r.name for r in store.get_runs("penguin")]  # newest first
    if len(runs) < 2:
        raise SystemExit(f"{home} needs two penguin runs; found {len(runs)}")
    newest, older = runs[0], runs[1]
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with UIServer(url, port=0) as ui, sync_playwright() as p:
        base = ui.url.rstrip("/")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})

        def save(name: str, locator=None, max_height: int | None = None) -> None:
            path = out / name
            if locator is None:
                page.screenshot(path=str(path))
            else:
                page.evaluate("window.scrollTo(0, 0)")
                box = locator.bounding_box()
                height = min(box["height"], max_height) if max_height else box["height"]
                page.screenshot(path=str(path), full_page=True,
                                clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": height})
            written.append(path)

        page.goto(base + "/runs")
        page.wait_for_selector("tr.run-row")
        for run in (newest, older):
            page.locator(f'tr[data-run="{run}"] input.pick').check()
        save("ui-runs.png")

        page.set_viewport_size({"width": 1440, "height": 1250})
        page.goto(f"{base}/runs/{newest}?node=Trainer")
        page.wait_for_selector('#node-panel .execution')
        page.screenshot(path=str(out / "ui-run.png"))
        written.append(out / "ui-run.png")
        page.set_viewport_size({"width": 1440, "height": 900})

        model = page.evaluate(f"fetch('/api/runs/{newest}').then(r => r.json())")
        trainer = next(n for n in model["nodes"] if n["id"] == "Trainer")
        detail = page.evaluate(f"fetch('/api/executions/{trainer['execution_id']}').then(r => r.json())")
        model_id = detail["outputs"]["model"][0]["id"]
        page.goto(f"{base}/artifacts/{model_id}")
        page.wait_for_selector("#lineage .node")
        page.locator('#lineage .node[aria-label*="NewExampleGen.examples"]').click()
        page.locator("#lineage-info button.expand").click()
        page.wait_for_selector('#lineage .node[data-label="penguins.csv"]')
        page.locator('#lineage .node[data-label="penguins.csv"]').click()
        save("ui-lineage.png", page.locator("section.card", has=page.locator("#lineage")))
        save("ui-model.png", page.locator("#viewer"), max_height=1100)

        page.goto(f"{base}/runs/{newest}?node=NewStatisticsGen")
        page.locator('#node-panel a.artifact-link[data-key="statistics"]').click()
        page.wait_for_selector('#viewer[data-kind="statistics"]')
        page.select_option("#compare-with", "split:eval")
        page.wait_for_selector(".legend span:nth-child(2)")
        save("ui-statistics.png", page.locator("#viewer"), max_height=1150)

        evaluator = next(n for n in model["nodes"] if n["id"] == "Evaluator")
        ev = page.evaluate(f"fetch('/api/executions/{evaluator['execution_id']}').then(r => r.json())")
        page.goto(f"{base}/artifacts/{ev['outputs']['evaluation'][0]['id']}")
        page.wait_for_selector('#viewer[data-kind="evaluation"]')
        save("ui-evaluation.png", page.locator("#viewer"), max_height=900)
        # the plots of one slice: ROC, precision-recall, the confusion matrix (README's evaluation.png)
        page.select_option("#plot-slice", label="island=Biscoe")
        page.wait_for_selector(".eval-plots svg.roc path.series")
        save("evaluation.png", page.locator(".eval-plots"))

        page.goto(f"{base}/compare?runs={older},{newest}")
        page.wait_for_selector("#artifact-diff")
        save("ui-compare.png", page.locator("main"), max_height=1500)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="a JFX_HOME with two penguin runs (default: make one)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = ap.parse_args(argv)
    if args.home is not None:
        written = shoot(args.home, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            print("running examples/penguin twice ...", flush=True)
            build_penguin_home(home)
            written = shoot(home, args.out)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
