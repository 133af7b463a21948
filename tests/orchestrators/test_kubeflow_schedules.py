"""jfx submit --schedule and jfx schedule list|pause|resume|delete against an in-test Kubeflow
Pipelines API server (tests/resources/jfx_kfp_api.py): what kfp.Client sends for a recurring run,
the pipeline version it runs, and the round trip of listing, pausing, resuming and deleting."""

from __future__ import annotations

import json
import re

import jfx_testlib as lib
import pytest
from jfx_requires import importorskip

from jfx import Pipeline, RuntimeParameter
from jfx.cli import main as jfx_main
from jfx.errors import InvalidArgumentError

importorskip("kfp", hint="pip install kfp", allow_module_level=True)

from jfx.orchestrators import KubeflowDagRunner
from jfx.orchestrators._kfp_schedule import create_schedule, kfp_cron

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

IMAGE = "registry.example/jfx:0.1"
DB = "postgresql+psycopg://jfx@db.example.internal/jfx"
RECURRING = "/apis/v2beta1/recurringruns"


@pytest.fixture
def package(tmp_path):
    nums = lib.make_numbers(rows=RuntimeParameter("rows", int, default=3))
    pipeline = Pipeline("nightly", components=[nums, lib.total(numbers=nums.outputs["numbers"])])
    runner = KubeflowDagRunner(IMAGE, pipeline_root="/mnt/jfx/artifacts", metadata_url=DB,
                               volumes={"/mnt/jfx": "jfx-pvc"})
    return runner.compile(pipeline, tmp_path / "p.yaml")


# ------------------------------------------------------------------------------ cron expressions

@pytest.mark.parametrize(("given", "sent"), [
    ("0 2 * * *", "0 0 2 * * *"),                  # standard cron: 02:00 daily, seconds added
    ("*/15 9-17 * * MON-FRI", "0 */15 9-17 * * MON-FRI"),
    ("0 0 1,15 jan,jul ?", "0 0 0 1,15 jan,jul ?"),
    ("30 0 2 * * 0", "30 0 2 * * 0"),             # Kubeflow's six fields pass as they are
    ("5/10 * * * * *", "5/10 * * * * *"),
    ("  0   2 * *  * ", "0 0 2 * * *"),
    ("@daily", "@daily"),
    ("@every 1h30m", "@every 1h30m"),
])
def test_standard_cron_gets_its_seconds_and_kubeflow_cron_passes(given, sent):
    assert kfp_cron(given) == sent


@pytest.mark.parametrize(("given", "message"), [
    ("0 25 * * *", "the hour field '25' is out of range 0-23"),
    ("60 * * * *", "the minute field '60' is out of range 0-59"),
    ("0 2 * * 7", "the day-of-week field '7' is out of range 0-6; Kubeflow reads 0 as Sunday, not 7"),
    ("0 2 0 * *", "the day-of-month field '0' is out of range 1-31"),
    ("0 2 * 13 *", "the month field '13' is out of range 1-12"),
    ("0 2 * foo *", "the month field 'foo' has 'foo', which is not a number or a name (JAN/FEB"),
    ("0 2 * * */0", "the day-of-week field '*/0' has the step '0'; a step is a positive whole number"),
    ("0 5-2 * * *", "the hour field '5-2' has the range '5-2', which ends before it begins"),
    ("0 2 * *", "expected 5 fields (standard cron) or 6 (seconds first), got 4"),
    ("1 2 3 4 5 6 7", "got 7"),
    ("", "got 0"),
    ("@sometimes", "unknown descriptor"),
    ("@every soon", "@every takes a duration like 90m"),
])
def test_a_bad_expression_is_refused_naming_the_field(given, message):
    with pytest.raises(InvalidArgumentError, match=re.escape(message)) as err:
        kfp_cron(given)
    assert str(err.value).startswith(f"--schedule {given!r}: ")


# ------------------------------------------------------------------------------ creating a schedule

def test_submit_schedule_creates_a_recurring_run_of_an_uploaded_version(kfp_server, package, capsys):
    args = ["submit", package, "--host", kfp_server.url, "--schedule", "0 2 * * *", "--param", "rows=7",
            "--experiment", "nightly-exp", "--max-concurrency", "3", "--no-catchup",
            "--start-time", "2027-01-01T00:00:00Z", "--end-time", "2027-06-30T00:00"]
    assert jfx_main(args) == 0
    out, err = capsys.readouterr()
    assert "'0 2 * * *' (standard cron) is '0 0 2 * * *' in Kubeflow's six fields" in err
    assert "created recurring run rr-1 (0 0 2 * * *)" in out
    assert f"{kfp_server.url}/#/recurringrun/details/rr-1" in out
    # the spec was uploaded as a version of its pipeline, named by its content
    [(_, _, _, pipeline)] = kfp_server.posts("/apis/v2beta1/pipelines")
    assert pipeline == {"display_name": "nightly"}
    [version] = kfp_server.versions
    assert re.fullmatch(r"nightly-[0-9a-f]{12}", version["name"]) and "pipelineInfo" in version["file"]
    # the body kfp.Client.create_recurring_run sent
    [(_, _, _, body)] = kfp_server.posts(RECURRING)
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *", "start_time": "2027-01-01T00:00:00+00:00",
                                                 "end_time": "2027-06-30T00:00:00+00:00"}}
    assert body["pipeline_version_reference"] == {"pipeline_id": "pipe-1", "pipeline_version_id": "ver-1"}
    assert "pipeline_spec" not in body  # it runs the uploaded version
    assert body["max_concurrency"] == 3 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["experiment_id"] == "exp-1" and body["display_name"] == "nightly 0 2 * * *"
    assert body["runtime_config"]["parameters"] == {"rows": 7}  # typed as the spec declares
    assert "namespace" not in body
    # the same spec again: the version is reused, not uploaded twice
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--schedule", "@hourly",
                     "--run-name", "hourly"]) == 0
    assert len(kfp_server.versions) == 1
    second = kfp_server.posts(RECURRING)[-1][3]
    assert second["pipeline_version_reference"]["pipeline_version_id"] == "ver-1"
    assert second["trigger"]["cron_schedule"]["cron"] == "@hourly" and second["display_name"] == "hourly"
    assert second["max_concurrency"] == 1 and second["no_catchup"] is False
    assert "start_time" not in second["trigger"]["cron_schedule"]


def test_a_changed_spec_gets_its_own_version_and_a_named_version_must_be_new(kfp_server, package, capsys):
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--schedule", "0 3 * * *"]) == 0
    with open(package, "a") as fh:
        fh.write("\n# changed\n")
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--schedule", "0 3 * * *"]) == 0
    assert len({v["name"] for v in kfp_server.versions}) == 2
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--schedule", "0 3 * * *",
                     "--pipeline-name", "other", "--pipeline-version", "v1"]) == 0
    assert kfp_server.versions[-1]["name"] == "v1" and kfp_server.versions[-1]["pipelineid"] == "pipe-2"
    capsys.readouterr()
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--schedule", "0 3 * * *",
                     "--pipeline-name", "other", "--pipeline-version", "v1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the server refused: HTTP 409" in err
    assert len(kfp_server.posts(RECURRING)) == 3


def test_bad_schedule_values_are_refused_before_the_server_is_asked(kfp_server, package, capsys):
    base = ["submit", package, "--host", kfp_server.url]

    def refused(*more):
        assert jfx_main([*base, *more]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    assert "the day-of-week field '9' is out of range 0-6" in refused("--schedule", "0 2 * * 9")
    assert "--max-concurrency 11: Kubeflow runs 1 to 10" in refused("--schedule", "@daily", "--max-concurrency", "11")
    assert "--max-concurrency 0" in refused("--schedule", "@daily", "--max-concurrency", "0")
    assert "--end-time 2027-01-01T00:00:00+00:00 is not after --start-time" in refused(
        "--schedule", "@daily", "--start-time", "2027-01-02", "--end-time", "2027-01-01")
    assert "--start-time 'tomorrow': expected an ISO 8601 time" in refused("--schedule", "@daily",
                                                                          "--start-time", "tomorrow")
    assert "--max-concurrency, --no-catchup: for a recurring run; add --schedule CRON" in refused(
        "--max-concurrency", "2", "--no-catchup")
    assert "--param jfx_run_id: every run of a schedule is its own jfx run" in refused(
        "--schedule", "@daily", "--param", "jfx_run_id=fixed")
    assert "has no parameter(s) colour" in refused("--schedule", "@daily", "--param", "colour=red")
    assert kfp_server.requests == []


def test_multi_user_mode_sends_the_namespace_in_the_recurring_run(kfp_server, package, capsys):
    kfp_server.multi_user = True
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--schedule", "@daily"]) == 1
    assert "runs in multi-user mode: give your profile's namespace" in capsys.readouterr().err
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--schedule", "@daily",
                     "--namespace", "team-a"]) == 0
    [(_, _, _, body)] = kfp_server.posts(RECURRING)
    assert body["namespace"] == "team-a"  # else the server refuses: "Recurring run has no namespace."
    assert body["trigger"] == {"cron_schedule": {"cron": "@daily"}}
    assert body["pipeline_version_reference"] == {"pipeline_id": "pipe-1", "pipeline_version_id": "ver-1"}
    assert body["max_concurrency"] == 1 and body["mode"] == "ENABLE"
    capsys.readouterr()
    assert jfx_main(["schedule", "list", "--host", kfp_server.url, "--namespace", "team-a", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == "rr-1"
    listed = [q for path, q in kfp_server.queries if path == RECURRING and "namespace" in q]
    assert listed and listed[-1]["namespace"] == ["team-a"]


# ------------------------------------------------------------------------------ list, pause, resume, delete

def test_list_pause_resume_and_delete_round_trip(kfp_server, package, capsys):
    host = ["--host", kfp_server.url]
    assert jfx_main(["schedule", "list", *host]) == 0
    assert capsys.readouterr().out == "no recurring runs\n"
    for cron in ("0 2 * * *", "0 */6 * * *"):
        create_schedule(package, kfp_server.url, cron, max_concurrency=2)
    assert jfx_main(["schedule", "list", *host]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "SCHEDULE", "MAX", "NAME"]
    assert lines[1].split()[:3] == ["rr-1", "ENABLED", "0"] and "0 0 2 * * *" in lines[1]
    assert "0 0 */6 * * *" in lines[2] and len(lines) == 3

    assert jfx_main(["schedule", "pause", "rr-1", *host]) == 0
    assert "paused recurring run rr-1" in capsys.readouterr().out
    assert ("POST", f"{RECURRING}/rr-1:disable") in [(r[0], r[1]) for r in kfp_server.requests]
    assert jfx_main(["schedule", "list", *host, "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["rr-1"]["status"] == "DISABLED" and rows["rr-2"]["status"] == "ENABLED"
    assert rows["rr-1"]["cron"] == "0 0 2 * * *" and rows["rr-1"]["max_concurrency"] == 2
    assert rows["rr-1"]["version_id"] == "ver-1" and rows["rr-1"]["url"].endswith("/#/recurringrun/details/rr-1")

    assert jfx_main(["schedule", "resume", "rr-1", *host]) == 0
    assert kfp_server.recurring["rr-1"]["status"] == "ENABLED"
    assert jfx_main(["schedule", "delete", "rr-2", *host]) == 0
    assert "deleted recurring run rr-2" in capsys.readouterr().out
    assert ("DELETE", f"{RECURRING}/rr-2") in [(r[0], r[1]) for r in kfp_server.requests]
    assert jfx_main(["schedule", "list", *host, "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["rr-1"]
    # an unknown id: one line that says where to find the ids
    for action in ("pause", "resume", "delete"):
        assert jfx_main(["schedule", action, "rr-9", *host]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"no recurring run 'rr-9' on {kfp_server.url}" in err


def test_list_reads_every_page(kfp_server, package, capsys):
    from jfx.orchestrators._kfp_schedule import list_schedules

    for hour in range(3):
        create_schedule(package, kfp_server.url, f"0 {hour} * * *")
    kfp_server.recurring.update({f"rr-x{i}": {**kfp_server.recurring["rr-1"], "recurring_run_id": f"rr-x{i}"}
                                 for i in range(150)})
    rows = list_schedules(kfp_server.url)
    assert len(rows) == 153 and len({r["id"] for r in rows}) == 153
    pages = [q for r, (path, q) in zip(kfp_server.requests, kfp_server.queries, strict=True)
             if r[0] == "GET" and path == RECURRING]
    assert [(q["page_size"], q.get("page_token")) for q in pages] == [(["100"], None), (["100"], ["100"])]


def test_schedule_commands_take_the_connection_flags(kfp_server, tmp_path, capsys):
    kfp_server.credentials = {"Bearer from-file"}
    assert jfx_main(["schedule", "list", "--host", kfp_server.url]) == 1
    assert "the server refused the credentials (HTTP 401)" in capsys.readouterr().err
    (tmp_path / "token").write_text("from-file\n")
    assert jfx_main(["schedule", "list", "--host", kfp_server.url, "--token-file", str(tmp_path / "token")]) == 0
    assert {r[2].get("authorization") for r in kfp_server.requests if r[1] == RECURRING} == {"Bearer from-file"}
    assert jfx_main(["schedule", "pause", "rr-1", "--host", "localhost:8080"]) == 1
    assert "expected the Kubeflow Pipelines address" in capsys.readouterr().err
