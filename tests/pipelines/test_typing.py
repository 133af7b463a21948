"""A type checker reads component signatures as the values the function receives."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import jfx

api = pytest.importorskip("mypy.api")

PACKAGE_DIR = Path(jfx.__file__).resolve().parent

USER_CODE = '''
from jfx import Input, Output, Parameter, component
from jfx import types

@component
def train(
    examples: Input[types.Examples],
    shards: Input[list[types.Examples]],
    model: Output[types.Model],
    steps: Parameter[int] = 10,
) -> None:
    reveal_type(examples)
    reveal_type(shards)
    reveal_type(model)
    reveal_type(steps)
    model.properties["rows"] = examples.uri + steps
'''


def test_mypy_sees_input_output_parameter_as_the_values_inside_the_function(tmp_path: Path) -> None:
    (tmp_path / "jfx").symlink_to(PACKAGE_DIR)
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_CODE))
    out, _, _ = api.run(
        [
            "--follow-imports=silent",
            "--config-file=",
            "--no-error-summary",
            "--no-incremental",
            "--cache-dir=" + str(tmp_path / "cache"),
            "--python-version=3.10",
            str(tmp_path / "user.py"),
        ]
    )
    out = out.replace(str(tmp_path) + "/", "")
    assert 'user.py:12: note: Revealed type is "jfx.pipelines._artifacts.Examples"' in out, out
    assert 'user.py:13: note: Revealed type is "list[jfx.pipelines._artifacts.Examples]"' in out, out
    assert 'user.py:14: note: Revealed type is "jfx.pipelines._artifacts.Model"' in out, out
    assert 'user.py:15: note: Revealed type is "int"' in out, out
    # A mistake in the body is found: a str plus an int.
    assert 'user.py:16: error: Unsupported operand types for + ("str" and "int")' in out, out


def test_the_package_declares_its_type_hints() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file()
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((PACKAGE_DIR / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["jfx"]
