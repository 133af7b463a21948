"""The UI's route table is its API documentation: every route answers and is listed."""

from __future__ import annotations

import re
from pathlib import Path

from jfx.metadata.ui import API_ROUTES

DOCS = Path(__file__).resolve().parents[3] / "docs" / "ui.md"


def _path(route: str) -> str:
    """``"GET /api/runs/{run_id}?limit=1"`` -> ``"/api/runs/{}"``."""
    return re.sub(r"\{[^}]*\}", "{}", route.split(" ", 1)[-1].split("?", 1)[0])


def test_get_api_lists_every_route_and_each_listed_route_is_served(get):
    listed = get("/api")[1]["routes"]
    assert [(r["route"], r["what"]) for r in listed] == [tuple(r) for r in API_ROUTES]
    paths = {_path(r["route"]) for r in listed}
    # The index answers, so it is a route and must list itself too.
    assert "/api" in paths
    for route in listed:
        target = _path(route["route"]).replace("{}", "1")
        status, body, _ = get(target)
        assert not (status == 404 and "no API route" in str(body)), route["route"]
    status, body, _ = get("/api/runs/1/nothing")
    assert status == 404 and "no API route" in body["error"]["message"]


def test_docs_describe_every_route():
    documented = {_path(m) for m in re.findall(r"^\| `(/api[^`]*)` \|", DOCS.read_text(), flags=re.MULTILINE)}
    missing = sorted({_path(r) for r, _ in API_ROUTES} - documented)
    assert not missing, f"docs/ui.md does not describe {missing}"
