"""The suite's own rules: hermetic folders, no skipped dependency under CI, no Prism look-up."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import jfx_dbs
import jfx_requires
import pytest
from jfx_proc import SIGINT_AS_CTRL_C, child_env

TESTS = Path(__file__).parent
SOURCE_ROOT = TESTS.parent
SESSION_ROOT = Path(os.environ["JFX_TEST_SESSION_ROOT"])
FOLDERS = ["HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
           "MPLCONFIGDIR", "PIP_CACHE_DIR", "PLAYWRIGHT_BROWSERS_PATH"]


@pytest.mark.parametrize("name", FOLDERS)
def test_home_tmpdir_xdg_and_caches_point_into_the_session_folder(name):
    assert Path(os.environ[name]).is_relative_to(SESSION_ROOT), (name, os.environ[name])
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_temporary_files_and_the_home_folder_are_inside_the_session_folder(tmp_path):
    assert Path(tempfile.gettempdir()).is_relative_to(SESSION_ROOT)
    assert tmp_path.is_relative_to(SESSION_ROOT)
    assert Path.home().is_relative_to(SESSION_ROOT) and Path("~/.config").expanduser().is_relative_to(SESSION_ROOT)
    code = "import pathlib, tempfile; print(pathlib.Path.home()); print(tempfile.gettempdir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert all(Path(line).is_relative_to(SESSION_ROOT) for line in out.split()), out


def test_no_bytecode_is_written_by_the_suite_or_its_subprocesses():
    assert sys.dont_write_bytecode and os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
    out = subprocess.run([sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_a_run_of_the_suite_leaves_no_pycache_and_nothing_in_home(tmp_path):
    # a nested pytest with nothing set by the caller: conftest alone must keep the tree clean
    env = {k: v for k, v in child_env().items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), TMPDIR=str(tmp_path))
    before = set(SOURCE_ROOT.rglob("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", str(TESTS / "core" / "test_stable_hash.py")],
                          cwd=SOURCE_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(SOURCE_ROOT.rglob("__pycache__")) - before == set()
    assert list(home.iterdir()) == [], "the suite wrote into the caller's HOME"
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == [], "a green run leaves no temporary folder"


def test_beam_direct_runner_never_looks_for_prism(caplog):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from apache_beam.runners.portability.prism_runner import PrismJobServer

    # Beam decided where Prism's binary goes when it was imported; a Beam pipeline that a
    # CLI test ran in a subprocess may have looked there already, so start from nothing
    cache = Path(PrismJobServer.BIN_CACHE).parent
    shutil.rmtree(cache, ignore_errors=True)
    caplog.set_level(logging.INFO, logger="apache_beam")
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        _ = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2)
    assert "Downloading prism" not in caplog.text and "Unable to fetch remote prism" not in caplog.text
    assert not cache.exists()


@pytest.mark.parametrize("ci,outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_optional_module_fails_under_ci_and_skips_otherwise(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    raised = _outcome(lambda: jfx_requires.importorskip("no_such_module_for_jfx"))
    assert isinstance(raised, outcome) and "no_such_module_for_jfx" in str(raised), repr(raised)


@pytest.mark.parametrize("driver,backend", [("psycopg", "postgresql"), ("pymysql", "mysql")])
def test_a_hidden_database_driver_fails_the_backend_tests_under_ci(monkeypatch, tmp_path, driver, backend):
    monkeypatch.setitem(sys.modules, driver, None)  # as if it were not installed
    monkeypatch.setenv("CI", "true")
    raised = _outcome(lambda: next(jfx_dbs.fresh_database(backend, tmp_path)))
    # a skip here would let a CI run without the driver exit 0
    assert isinstance(raised, pytest.fail.Exception), repr(raised)
    assert re.search(f"could not import '{driver}'.*CI=true", str(raised)), str(raised)


def _outcome(call) -> BaseException | None:
    """What ``call`` raised, skips included (a skip must not skip the test that checks for it)."""
    try:
        call()
    except BaseException as err:  # noqa: BLE001 - pytest's skip and fail outcomes are BaseExceptions
        return err
    return None


def test_every_optional_dependency_goes_through_the_ci_aware_helper():
    direct = re.compile(r"pytest\.importorskip\(|pytest\.skip\(|^\s*except ImportError", re.MULTILINE)
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")
                 if p.name != "jfx_requires.py" and p != Path(__file__) and "benchmarks" not in p.parts
                 and direct.search(p.read_text())]
    assert offenders == [], f"use jfx_requires.importorskip / unavailable instead: {offenders}"


def test_a_child_started_by_a_parent_that_ignores_sigint_still_takes_ctrl_c(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(SIGINT_AS_CTRL_C + "import signal\nprint(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    finally:
        signal.signal(signal.SIGINT, previous)
    assert out.strip() == "True"


# -- benchmarks: a missed target fails `make bench`, and every figure names its statistic --

BENCHMARKS = TESTS / "benchmarks"


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench", BENCHMARKS / "_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_bench"] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def test_a_missed_benchmark_target_gives_exit_status_1(capsys):
    bench = _bench_module()
    targets = bench.Targets()
    assert targets.check("first run", 6.9, 7, "s") == "met"
    assert targets.check("rows/s", 500_000, 450_000, "rows/s", at_least=True) == "met"
    assert targets.exit_code() == 0
    assert targets.check("cached", 2.5, 2, "s") == "MISSED"
    assert targets.exit_code() == 1
    assert "MISSED 1 of 3 targets" in capsys.readouterr().out


def test_benchmarks_report_medians_by_default():
    bench = _bench_module()
    assert bench.summarise([5.0, 1.0, 9.0]) == 5.0
    assert bench.summarise([5.0, 1.0, 9.0], "best") == 1.0
    assert bench.summarise([5.0, 1.0, 9.0], "best", higher_is_better=True) == 9.0
    assert bench.label("median", 5) == "median of 5" and bench.label("best", 1) == "1 run"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("bench_*.py")))
def test_every_benchmark_exits_with_its_verdict(script):
    source = (BENCHMARKS / script).read_text()
    assert re.search(r"(sys\.exit|raise SystemExit)\(main\(\)\)", source), "main()'s result must be the exit status"
    assert "exit_code()" in source or re.search(r"return 0 if .+ else 1", source), "a missed target must exit 1"
    assert "median" in source, "figures are medians by default, and say so"
