"""Errors from running a user's Python file, told at the user's code, not at jfx's.

Loading a pipeline file executes it; what it raises reaches jfx through importlib and
jfx's own frames. :func:`file_error` turns that into one :class:`PipelineFileError`
whose message points at the user's file and line, with the original chained.
"""

from __future__ import annotations

import sys
import sysconfig
import traceback
from pathlib import Path

from jfx.errors import PipelineFileError

__all__ = ["file_error"]

_JFX_ROOT = Path(__file__).resolve().parents[1]
# jfx's own code; examples/ and tests/ hold pipelines like a user's
_JFX_PACKAGES = ("pipelines", "metadata", "orchestrators", "components", "core")


def _library_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple({Path(paths[n]).resolve() for n in names if n in paths} | {Path(sys.prefix).resolve() / "lib"})


_LIBRARIES = _library_roots()


def _resolved(filename: str) -> Path | None:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return None
    try:
        return Path(filename).resolve()
    except (OSError, RuntimeError):
        return None


def _is_users(path: Path | None, user_file: Path) -> bool:
    """Whether a frame's file is the user's code: not jfx's own, not the standard library or a package."""
    if path is None:
        return False
    if path == user_file:
        return True
    if path.is_relative_to(_JFX_ROOT):
        rel = path.relative_to(_JFX_ROOT).parts
        return len(rel) > 1 and rel[0] not in _JFX_PACKAGES
    return not any(path.is_relative_to(root) for root in _LIBRARIES)


def _what(err: BaseException) -> str:
    message = str(err)
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def file_error(path: str | Path, err: Exception) -> PipelineFileError:
    """A :class:`PipelineFileError` for ``err``, raised while running the file ``path``.

    The message is ``file:line:column: SyntaxError: msg`` for a syntax error (with the
    line of ``path`` that imported the file, if it is another one), else
    ``file:line: Type: message`` at the line of ``path`` that was running, plus the
    deepest frame of user code (outside jfx, the standard library and installed
    packages) where that is elsewhere. The caller chains ``err`` (``raise ... from err``).

    Example:
        >>> try:
        ...     exec(compile("x = 1 +", "/tmp/p.py", "exec"))
        ... except SyntaxError as e:
        ...     print(file_error("/tmp/p.py", e))
        /tmp/p.py:1:8: SyntaxError: invalid syntax
    """
    user_file = Path(path).resolve()
    frames = traceback.extract_tb(err.__traceback__)
    entry = next((f for f in frames if _resolved(f.filename) == user_file), None)
    at = f" (imported at {user_file}:{entry.lineno})" if entry else ""
    if isinstance(err, SyntaxError) and err.filename and _resolved(err.filename) is not None:
        where = f"{err.filename}:{err.lineno}" + (f":{err.offset}" if err.offset else "")
        if _resolved(err.filename) == user_file:
            at = ""
        return PipelineFileError(f"{where}: {type(err).__name__}: {err.msg}{at}", path=err.filename,
                                 line=err.lineno, column=err.offset)
    if isinstance(err, PipelineFileError):  # a file this one loaded: already told at its code
        return PipelineFileError(f"{err}{at}", path=err.path, line=err.line, column=err.column)
    if entry is None:
        return PipelineFileError(f"{user_file}: {_what(err)}", path=str(user_file))
    deepest = next((f for f in reversed(frames) if _is_users(_resolved(f.filename), user_file)), entry)
    raised = "" if deepest is entry else f" (raised at {deepest.filename}:{deepest.lineno} in {deepest.name})"
    return PipelineFileError(f"{user_file}:{entry.lineno}: {_what(err)}{raised}", path=str(user_file),
                             line=entry.lineno)
