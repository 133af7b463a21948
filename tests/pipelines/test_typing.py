"""A type checker reads component signatures as the values the function receives."""

from __future__ import annotations

import textwrap
from pathlib import Path

from jfx_requires import importorskip

import jfx

api = importorskip("mypy.api", hint="pip install -e '.[test]'", allow_module_level=True)

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

reveal_type(train)
reveal_type(train.fn)
train.fn(steps="ten")
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
    # @component keeps the function's type: editors show component.fn's signature, and a
    # unit test calling it wrongly is caught.
    assert 'user.py:18: note: Revealed type is "jfx.pipelines._component.Component[' in out, out
    assert "examples: jfx.pipelines._artifacts.Examples" in out.split("user.py:19:")[1], out
    assert 'user.py:20: error: Argument "steps" has incompatible type "str"; expected "int"' in out, out


def test_docstring_args_become_the_specs_descriptions() -> None:
    @jfx.component
    def scale(data: jfx.Input[jfx.types.Examples], scaled: jfx.Output[jfx.types.Examples],
              factor: jfx.Parameter[float] = 2.0, low: float = 0.0, high: float = 1.0) -> None:
        """Scale every number.

        Longer text that is not the summary.

        Args:
            data: the rows to read; one
                Parquet file per split.
            scaled: the scaled rows.
            factor (float): what to multiply by.
            low, high: the range to clip to.

        Returns:
            Nothing.
        """

    spec = scale.spec
    assert spec.description == "Scale every number."
    assert spec.inputs["data"].description == "the rows to read; one Parquet file per split."
    assert spec.outputs["scaled"].description == "the scaled rows."
    assert spec.parameters["factor"].description == "what to multiply by."
    assert spec.parameters["low"].description == spec.parameters["high"].description == "the range to clip to."


def test_the_package_declares_its_type_hints() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file()
    tomllib = importorskip("tomllib", hint="Python 3.11+")
    pyproject = tomllib.loads((PACKAGE_DIR / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["jfx"]
