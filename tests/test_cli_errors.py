"""What the `jfx` command prints when a store cannot be opened or a pipeline file cannot be loaded.

One line on stderr naming the (masked) URL or the user's file and line, exit status 1;
the traceback only with --debug.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jfx

HELLO = Path(jfx.__file__).parent / "examples" / "hello" / "pipeline.py"
JFX = shutil.which("jfx", path=str(Path(sys.executable).parent)) or "jfx"
UNREACHABLE = "postgresql+psycopg://u:s3cret@127.0.0.1:1/x"
MASKED = "postgresql+psycopg://u:***@127.0.0.1:1/x"


def jfx_cmd(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "JFX_METADATA_URL"}
    env["JFX_HOME"] = str(home)
    return subprocess.run([JFX, *args], env=env, cwd=home.parent, capture_output=True, text=True, timeout=120,
                          check=False)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("jfx: error: ")
    return lines[0]


@pytest.mark.parametrize("command", [
    ["run", str(HELLO)],
    ["run", "--resume", "hello-1"],
    ["runs", "list"],
    ["runs", "show", "hello-1"],
    ["lineage", "1"],
    ["ui", "--port", "0"],
])
def test_an_unreachable_store_is_one_line_with_the_masked_url(tmp_path, command):
    line = one_error_line(jfx_cmd(*command, "--metadata-url", UNREACHABLE, home=tmp_path / "home"))
    assert MASKED in line and "refused" in line and "s3cret" not in line


@pytest.mark.db
def test_a_missing_mysql_database_is_one_line_naming_it(tmp_path):
    url = "mysql+pymysql://root@127.0.0.1/no_such_db"
    line = one_error_line(jfx_cmd("runs", "list", "--metadata-url", url, home=tmp_path / "home"))
    assert url in line and "Unknown database 'no_such_db'" in line


def test_debug_shows_the_store_error_traceback(tmp_path):
    proc = jfx_cmd("--debug", "runs", "list", "--metadata-url", UNREACHABLE, home=tmp_path / "home")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "OperationalError" in proc.stderr and MASKED in proc.stderr


SYNTAX_ERROR = "from jfx import Pipeline\n\npipeline = Pipeline('p', components=[\n    1 +* 2,\n])\n"
RAISES = (
    "from jfx import Pipeline\n"
    "\n"
    "def rows():\n"
    "    return int('many')\n"
    "\n"
    "ROWS = rows()\n"
)


@pytest.mark.parametrize("command", [["run"], ["compile", "--local"]])
def test_a_syntax_error_is_one_line_with_file_line_and_column(tmp_path, command):
    path = tmp_path / "broken.py"
    path.write_text(SYNTAX_ERROR)
    line = one_error_line(jfx_cmd(*command, str(path), home=tmp_path / "home"))
    assert f"{path}:4:8: SyntaxError: invalid syntax" in line


@pytest.mark.parametrize("command", [["run"], ["compile", "--local"]])
def test_an_exception_while_importing_names_the_users_file_and_line(tmp_path, command):
    path = tmp_path / "raises.py"
    path.write_text(RAISES)
    line = one_error_line(jfx_cmd(*command, str(path), home=tmp_path / "home"))
    assert f"{path}:6: ValueError: invalid literal for int() with base 10: 'many'" in line
    assert f"(raised at {path}:4 in rows)" in line


def test_an_import_error_names_the_users_line(tmp_path):
    path = tmp_path / "imports.py"
    path.write_text("import os\nimport no_such_module_for_jfx_tests\n")
    line = one_error_line(jfx_cmd("run", str(path), home=tmp_path / "home"))
    assert f"{path}:2: ModuleNotFoundError: No module named 'no_such_module_for_jfx_tests'" in line


def test_debug_shows_the_pipeline_file_traceback(tmp_path):
    path = tmp_path / "raises.py"
    path.write_text(RAISES)
    proc = jfx_cmd("--debug", "run", str(path), home=tmp_path / "home")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and f'File "{path}", line 4, in rows' in proc.stderr
