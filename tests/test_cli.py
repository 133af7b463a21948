"""The `jfx` command, end to end, from a subprocess (as a user runs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jfx

HELLO = Path(jfx.__file__).parent / "examples" / "hello" / "pipeline.py"
JFX = shutil.which("jfx", path=str(Path(sys.executable).parent)) or "jfx"


def jfx_cmd(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}
    env["JFX_HOME"] = str(home)
    proc = subprocess.run([JFX, *args], env=env, cwd=home.parent, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"jfx {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def node_lines(stdout: str) -> dict[str, list[str]]:
    lines = {}
    for line in stdout.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) >= 2 and parts[0] in ("make_data", "summarize", "write_report"):
            lines[parts[0]] = parts[1:]
    return lines


def test_hello_runs_then_reruns_from_cache_and_is_browsable(tmp_path):
    home = tmp_path / "home"
    first = jfx_cmd("run", str(HELLO), "--progress", "log", home=home)
    assert "of pipeline hello: COMPLETE" in first.stdout
    assert {k: v[0] for k, v in node_lines(first.stdout).items()} == {
        "make_data": "complete", "summarize": "complete", "write_report": "complete"}
    assert "ran: no earlier run" in first.stdout
    assert "make_data: running" in first.stderr  # progress lines when not on a terminal
    report = next((home / "artifacts" / "hello" / "write_report" / "report").glob("*/report.md"))
    assert "200 rows." in report.read_text()

    second = jfx_cmd("run", str(HELLO), home=home)
    assert {v[0] for v in node_lines(second.stdout).values()} == {"cached"}
    assert "reused the outputs of execution" in second.stdout

    third = jfx_cmd("run", str(HELLO), "--param", "rows=20", home=home)
    lines = node_lines(third.stdout)
    assert "new parameter value: rows 200 -> 20" in " ".join(lines["make_data"])
    assert "changed upstream artifact: data" in " ".join(lines["summarize"])

    runs = json.loads(jfx_cmd("runs", "list", "--json", home=home).stdout)
    assert [r["pipeline"] for r in runs] == ["hello"] * 3
    assert runs[0]["parameters"] == {"rows": 20} and runs[0]["state"] == "COMPLETE"
    listing = jfx_cmd("runs", "list", home=home).stdout
    assert all(r["run_id"] in listing for r in runs)

    show = json.loads(jfx_cmd("runs", "show", runs[1]["run_id"], "--json", home=home).stdout)
    assert [(n["node"], n["state"]) for n in show["nodes"]] == [
        ("make_data", "CACHED"), ("summarize", "CACHED"), ("write_report", "CACHED")]
    assert (show["pipeline"], show["state"], show["runner"], show["attempts"]) == ("hello", "COMPLETE", "local", 1)
    assert show["parameters"] == runs[1]["parameters"] and show["duration_s"] >= 0 and "ir" not in show
    report_id = show["nodes"][2]["outputs"]["report"][0]["id"]
    text = jfx_cmd("runs", "show", runs[1]["run_id"], home=home).stdout
    assert "write_report" in text and "Report" in text

    lineage = jfx_cmd("lineage", str(report_id), home=home).stdout
    for expected in ("execution", "write_report", "summarize.summary", "make_data.data", "make_data"):
        assert expected in lineage
    graph = json.loads(jfx_cmd("lineage", str(report_id), "--json", home=home).stdout)
    assert {a["name"] for a in graph["artifacts"]} >= {"make_data.data", "summarize.summary", "write_report.report"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope.py"], "nope.py: no such file"),
        (["run", str(HELLO), "--param", "rows=many"], "pipeline parameter 'rows' expects int, got 'many'"),
        (["run", str(HELLO), "--param", "colour=red"], "has no parameter(s) colour"),
        (["runs", "show", "no-such-run"], "no run 'no-such-run'"),
        (["lineage", "999"], "999"),
        (["run"], "needs a PIPELINE_FILE"),
    ],
)
def test_errors_are_one_clear_line_without_a_traceback(tmp_path, args, message):
    proc = jfx_cmd(*args, home=tmp_path / "home", check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_debug_shows_the_traceback(tmp_path):
    proc = jfx_cmd("--debug", "runs", "show", "no-such-run", home=tmp_path / "home", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_a_failed_node_exits_non_zero_and_says_how_to_resume(tmp_path):
    pipeline = tmp_path / "broken.py"
    pipeline.write_text(
        "from jfx import Output, Pipeline, component\n"
        "from jfx.types import Dataset\n"
        "@component\n"
        "def boom(out: Output[Dataset]):\n"
        "    raise ValueError('column price has text in row 7')\n"
        "pipeline = Pipeline('broken', components=[boom()])\n"
    )
    proc = jfx_cmd("run", str(pipeline), home=tmp_path / "home", check=False)
    assert proc.returncode == 1
    assert "boom" in proc.stdout and "failed" in proc.stdout
    assert "ValueError: column price has text in row 7" in proc.stdout
    assert "jfx run --resume broken-" in proc.stdout


def test_version_and_module_entry_point(tmp_path):
    assert jfx_cmd("--version", home=tmp_path).stdout.strip() == f"jfx {jfx.__version__}"
    proc = subprocess.run([sys.executable, "-m", "jfx", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.stdout.strip() == f"jfx {jfx.__version__}"


def test_metadata_url_flag_and_default_location(tmp_path):
    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    jfx_cmd("run", str(HELLO), "--metadata-url", url, home=home)
    assert (tmp_path / "elsewhere.sqlite").exists()
    assert not (home / "metadata.sqlite").exists() or json.loads(
        jfx_cmd("runs", "list", "--json", home=home).stdout) == []
    assert len(json.loads(jfx_cmd("runs", "list", "--json", "--metadata-url", url, home=home).stdout)) == 1
    jfx_cmd("run", str(HELLO), home=home)
    assert (home / "metadata.sqlite").exists() and (home / "artifacts" / "hello").is_dir()


@pytest.mark.parametrize("runner", [[], ["--runner", "beam", "--beam-arg=--runner=DirectRunner"]],
                         ids=["local", "beam"])
def test_a_partial_run_from_the_command_line(tmp_path, runner):
    home = tmp_path / "home"
    full = jfx_cmd("run", str(HELLO), home=home)
    full_id = full.stdout.split()[1]
    part = jfx_cmd("run", str(HELLO), *runner, "--from", "summarize", "--to", "summarize", "--no-cache", home=home)
    states = {k: v[0] for k, v in node_lines(part.stdout).items()}
    assert states == {"make_data": "reused", "summarize": "complete", "write_report": "skipped"}
    assert " ".join(node_lines(part.stdout)["make_data"]).endswith(f"reused from run {full_id} (outputs of execution 1)")
    bad = jfx_cmd("run", str(HELLO), "--from", "nope", home=home, check=False)
    assert bad.returncode == 1 and "has no node 'nope'" in bad.stderr


def test_the_beam_runner_from_the_command_line(tmp_path):
    home = tmp_path / "home"
    proc = jfx_cmd("run", str(HELLO), "--runner", "beam", "--beam-arg=--runner=DirectRunner", home=home)
    assert "of pipeline hello: COMPLETE" in proc.stdout
    assert {v[0] for v in node_lines(proc.stdout).values()} == {"complete"}
    runs = json.loads(jfx_cmd("runs", "list", "--json", home=home).stdout)
    show = json.loads(jfx_cmd("runs", "show", runs[0]["run_id"], "--json", home=home).stdout)
    assert show["runner"] == "beam"


def test_a_false_condition_is_reported_with_its_reason(tmp_path):
    home = tmp_path / "home"
    pipeline_file = tmp_path / "flow.py"
    resources = Path(__file__).parent / "resources"
    pipeline_file.write_text(f"import sys\nsys.path.insert(0, {str(resources)!r})\nimport jfx_flow\n"
                             "pipeline = jfx_flow.fan_out()\n")
    proc = jfx_cmd("run", str(pipeline_file), "--param", "threshold=100", home=home)
    assert "of pipeline flow-fan: COMPLETE" in proc.stdout
    assert "skipped" in proc.stdout and "condition judge.verdict.passed == true is false" in proc.stdout
    run_id = json.loads(jfx_cmd("runs", "list", "--json", home=home).stdout)[0]["run_id"]
    show = json.loads(jfx_cmd("runs", "show", run_id, "--json", home=home).stdout)
    publish = next(n for n in show["nodes"] if n["node"] == "publish")
    assert publish["state"] == "SKIPPED" and publish["error"] == "condition judge.verdict.passed == true is false"


PENGUINISH = """
import jfx_partial

pipeline = jfx_partial.penguinish({root!r}, {url!r})
"""


def test_a_partial_run_shows_the_run_it_reuses_and_takes_from_run(tmp_path, capsys):
    from jfx import cli

    (tmp_path / "good.txt").write_text("Adelie Gentoo")
    (tmp_path / "bad.txt").write_text("Adelie Penguinzilla")
    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    pipeline = tmp_path / "pipeline.py"
    pipeline.write_text(PENGUINISH.format(root=str(tmp_path / "root"), url=url))

    def run(*args):
        code = cli.main(["run", str(pipeline), "--progress", "log", *args])
        out, err = capsys.readouterr()
        return code, out, err

    good, bad = f"data={tmp_path / 'good.txt'}", f"data={tmp_path / 'bad.txt'}"
    code, out, _ = run("--param", good)
    first = out.split()[1]
    assert code == 0
    run("--param", good, "--no-cache")
    assert run("--param", bad)[0] == 1  # validate halts

    code, out, err = run("--param", good, "--from", "train", "--to", "evaluate", "--from-run", first)
    assert code == 0, out + err
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for node in ("ingest", "validate", "fit"):
        assert lines[node].split()[1] == "reused" and f"reused from run {first} " in lines[node]
        assert f"{node}: reused from run {first}" in err  # the progress log says so too
    assert "cached" not in lines["ingest"] + lines["validate"] + lines["fit"]

    code, out, err = run("--param", bad, "--from", "train")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [err.strip()]  # one line, no traceback
    assert err.startswith("jfx: error: partial run: node 'validate' has no usable output: it halted the pipeline")
