"""Every id and paging number of the UI's JSON API: out of range or not a number answers 400."""

from __future__ import annotations

import pytest

from jfx.errors import InvalidArgumentError
from jfx.metadata import ListOptions

HUGE = "99999999999999999999999"  # larger than any SQL BIGINT
BAD_NUMBERS = [HUGE, "-1", "abc", "1_000", " 7", "1e3"]

# Each route with {} where one id or paging number goes (the others valid).
ROUTES = [
    "/api/artifacts/{}",
    "/api/artifacts/{}/view",
    "/api/artifacts/{}/files/report.md",
    "/api/executions/{}",
    "/api/executions/{}/log",
    "/api/lineage?artifact={}",
    "/api/lineage?execution={}",
    "/api/lineage?artifact=<model>&up={}",
    "/api/lineage?artifact=<model>&down={}",
    "/api/runs?limit={}",
    "/api/runs?offset={}",
    "/api/artifacts?limit={}",
    "/api/artifacts?offset={}",
    "/api/runs/demo-run-1/executions?limit={}",
    "/api/runs/demo-run-1/executions?offset={}",
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_id_or_paging_number_answers_400_naming_it(get, fake, route, value):
    target = route.replace("<model>", str(fake.ids["model"])).format(value)
    status, body, _ = get(target)
    assert status == 400, (target, body)
    assert body["error"]["code"] == 400
    assert value.strip()[:12] in body["error"]["message"]


@pytest.mark.parametrize("route", ["/api/artifacts/{}", "/api/executions/{}", "/api/lineage?artifact={}"])
def test_the_largest_bigint_id_is_a_plain_not_found(get, fake, route):
    status, body, _ = get(route.format(2**63 - 1))
    assert status == 404 and str(2**63 - 1) in body["error"]["message"]


def test_the_largest_offset_is_an_empty_page(get, fake):
    status, body, _ = get(f"/api/runs?offset={2**63 - 1}")
    assert status == 200 and body["runs"] == [] and body["total"] == 3


def test_the_store_refuses_ids_and_offsets_beyond_bigint(store):
    with pytest.raises(InvalidArgumentError, match="artifact_id"):
        store.get_artifact(int(HUGE))
    with pytest.raises(InvalidArgumentError, match="execution_id"):
        store.get_execution(-(2**64))
    with pytest.raises(InvalidArgumentError, match="offset"):
        ListOptions(offset=int(HUGE))
