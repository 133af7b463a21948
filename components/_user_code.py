"""References to user code: ``module_file`` and/or ``"package.module:function"``.

Trainer (``run_fn``), Tuner (``tuner_fn``) and Transform (``preprocessing_fn``) name the
user's function the same way; a :class:`FunctionRef` parses that, imports it (a file
under a name derived from its path and content, so an edited file is imported afresh),
and hashes its source for the cache key. Picklable, so Beam workers import the function
themselves.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jfx.errors import ComponentError, InvalidArgumentError

__all__ = ["FunctionRef"]

_IMPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class FunctionRef:
    """Where a user function lives: a Python file or an importable module, and its name.

    Built from a component's ``module_file`` and function parameters with :meth:`parse`.
    """

    module: str
    function: str
    is_file: bool = True

    @classmethod
    def parse(cls, module_file: str | None, fn: str | None, *, default: str, param: str) -> FunctionRef:
        """``module_file`` (+ a function name, default ``default``), or ``fn`` as
        ``"package.module:function"`` / ``"path/file.py:function"``.

        Raises:
            InvalidArgumentError: neither is given, or the reference is malformed.
        """
        if module_file:
            name = fn or default
            if ":" in name:
                raise InvalidArgumentError(
                    f"with module_file={module_file!r}, {param} is a function name, got {name!r}; "
                    f"give either module_file='model.py' and {param}='my_fn', or only {param}='pkg.mod:my_fn'")
            return cls(str(Path(module_file).expanduser().resolve()), name, True)
        if not fn:
            raise InvalidArgumentError(
                f"give module_file='path/to/module.py' (defining {default}) or {param}='package.module:function' "
                f"or {param}='path/to/file.py:function'")
        module, sep, name = fn.rpartition(":")
        if not sep or not module or not name:
            raise InvalidArgumentError(f"{param}={fn!r} is not 'package.module:function' or 'file.py:function'")
        if module.endswith(".py"):
            return cls(str(Path(module).expanduser().resolve()), name, True)
        return cls(module, name, False)

    def describe(self) -> str:
        return f"{self.function} in {self.module}" if self.is_file else f"{self.module}:{self.function}"

    def source_path(self) -> Path | None:
        """The file that holds the function, or ``None`` when it cannot be found."""
        if self.is_file:
            return Path(self.module)
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        return Path(spec.origin) if spec is not None and spec.origin else None

    def fingerprint(self) -> str:
        """A hash of the reference and of the source file's bytes (for the cache key).

        Raises:
            ComponentError: the module file does not exist.
        """
        h = hashlib.sha256(self.describe().encode())
        path = self.source_path()
        if path is not None:
            try:
                h.update(path.read_bytes())
            except OSError as err:
                raise ComponentError(f"module file {path} cannot be read: {err.strerror or err}") from err
        return h.hexdigest()

    def load(self) -> Callable[..., Any]:
        """Imports the function. A file is imported under a name derived from its path
        and content, so an edited file is imported afresh.

        Raises:
            ComponentError: the file is missing, fails to import, or lacks the function.
        """
        try:
            if self.is_file:
                path = Path(self.module)
                try:
                    data = path.read_bytes()
                except OSError as err:
                    raise ComponentError(f"module file {path} cannot be read: {err.strerror or err}") from err
                digest = hashlib.sha256(str(path).encode() + b"\0" + data).hexdigest()[:16]
                mod_name = f"_jfx_user_{path.stem}_{digest}"
                with _IMPORT_LOCK:
                    module = sys.modules.get(mod_name)
                    if module is None:
                        spec = importlib.util.spec_from_file_location(mod_name, path)
                        if spec is None or spec.loader is None:
                            raise ComponentError(f"{path} cannot be loaded as a Python module")
                        module = importlib.util.module_from_spec(spec)
                        sys.modules[mod_name] = module  # dataclasses and pickling look it up
                        try:
                            spec.loader.exec_module(module)
                        except BaseException:
                            del sys.modules[mod_name]
                            raise
            else:
                module = importlib.import_module(self.module)
        except ComponentError:
            raise
        except Exception as err:
            raise ComponentError(f"cannot import module {self.module}: {type(err).__name__}: {err}") from err
        fn = getattr(module, self.function, None)
        if not callable(fn):
            raise ComponentError(f"module {self.module} defines no function {self.function!r}; "
                                 f"define def {self.function}(ctx): ... in it")
        return fn
