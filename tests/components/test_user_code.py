"""Loading user code (module_file, run_fn, preprocessing_fn): errors name the file."""

from __future__ import annotations

import pytest

from jfx.components._user_code import FunctionRef
from jfx.errors import ComponentError


def test_a_module_file_python_cannot_import_is_named(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("def run_fn(ctx):\n    return None\n")
    ref = FunctionRef.parse(str(path), None, default="run_fn", param="run_fn")
    with pytest.raises(ComponentError, match=r"model\.txt cannot be loaded as a Python module"):
        ref.load()


def test_a_module_file_loads_its_function(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("def run_fn(ctx):\n    return 42\n")
    assert FunctionRef.parse(str(path), None, default="run_fn", param="run_fn").load()(None) == 42
