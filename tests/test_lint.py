"""The code passes the project's linter (the rules in pyproject.toml's [tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jfx_requires import importorskip

import jfx

ROOT = Path(jfx.__file__).resolve().parent


def test_ruff_finds_nothing() -> None:
    importorskip("ruff", hint="pip install -e '.[test]'")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
