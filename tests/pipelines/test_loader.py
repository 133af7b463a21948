"""Loading a pipeline file that is broken: one typed error at the user's file and line."""

from __future__ import annotations

import pickle
import sys
import textwrap

import pytest

from jfx.errors import InvalidPipelineError, PipelineFileError
from jfx.pipelines import load_module_from_file, load_pipeline


def write(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_a_syntax_error_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "p.py", "pipeline = [\n    1 +* 2,\n]\n")
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(path)
    err = info.value
    assert str(err) == f"{path}:2:8: SyntaxError: invalid syntax"
    assert (err.path, err.line, err.column) == (str(path), 2, 8)
    assert isinstance(err.__cause__, SyntaxError)


def test_a_syntax_error_in_an_imported_file_names_both(tmp_path):
    write(tmp_path, "helper_with_typo.py", "def f(:\n    pass\n")
    path = write(tmp_path, "p.py", f"""\
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import helper_with_typo
    """)
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(path)
    assert str(info.value) == (f"{tmp_path / 'helper_with_typo.py'}:1:7: SyntaxError: invalid syntax "
                               f"(imported at {path}:3)")
    sys.modules.pop("helper_with_typo", None)


def test_an_exception_names_the_users_line_and_the_deepest_user_frame(tmp_path):
    write(tmp_path, "rows_helper.py", "def rows(text):\n    return int(text)\n")
    path = write(tmp_path, "p.py", f"""\
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from rows_helper import rows

        ROWS = rows("many")
    """)
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(path)
    err = info.value
    assert str(err) == (f"{path}:5: ValueError: invalid literal for int() with base 10: 'many' "
                        f"(raised at {tmp_path / 'rows_helper.py'}:2 in rows)")
    assert (err.line, err.column) == (5, None) and isinstance(err.__cause__, ValueError)
    assert not [m for m in sys.modules if m.startswith("_jfx_file_p_")]  # nothing half-imported is left
    sys.modules.pop("rows_helper", None)


def test_a_wiring_error_in_create_pipeline_is_told_at_its_line(tmp_path):
    path = write(tmp_path, "p.py", """\
        from jfx import Input, Output, Pipeline, component
        from jfx.types import Dataset, Model

        @component
        def make(out: Output[Dataset]): ...

        @component
        def train(data: Input[Model]): ...

        def create_pipeline():
            m = make()
            return Pipeline("w", components=[m, train(data=m.outputs["out"])])
    """)
    with pytest.raises(InvalidPipelineError) as info:  # a PipelineFileError is an InvalidPipelineError
        load_pipeline(path)
    assert isinstance(info.value, PipelineFileError)
    assert str(info.value).startswith(f"{path}:12: InvalidPipelineError: node 'train' input 'data' expects Model")
    assert type(info.value.__cause__) is InvalidPipelineError


def test_the_error_survives_pickling_for_worker_processes(tmp_path):
    path = write(tmp_path, "component_file.py", "raise RuntimeError('no GPU here')\n")
    with pytest.raises(PipelineFileError) as info:
        load_module_from_file(path)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == f"{path}:1: RuntimeError: no GPU here" and (copy.path, copy.line) == (str(path), 1)


def test_ctrl_c_and_exit_pass_through(tmp_path):
    path = write(tmp_path, "p.py", "raise SystemExit(3)\n")
    with pytest.raises(SystemExit):
        load_pipeline(path)
