"""Optional test dependencies: skipped on a developer's machine, a failure under ``CI=true``.

The README promises that CI proves every backend and engine: a missing database
driver, Dask, kfp, Playwright or Chromium must fail the run there, never turn into a
skip that lets pytest exit 0. Every test that needs one goes through this module.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether the suite runs under CI (``CI=true``), where nothing optional may be missing."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(message: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip with ``message``, or fail with it under ``CI=true``."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: every optional dependency of the suite is required)", pytrace=False)
    pytest.skip(message, allow_module_level=allow_module_level)


def importorskip(modname: str, *, hint: str = "", allow_module_level: bool = False) -> ModuleType:
    """:func:`pytest.importorskip` that fails under ``CI=true`` instead of skipping.

    Args:
        modname: the module to import, e.g. ``"psycopg"`` or ``"dask.distributed"``.
        hint: how to install it, added to the message.
        allow_module_level: called at a test module's top level.
    """
    try:
        return importlib.import_module(modname)
    except ImportError as err:
        unavailable(f"could not import {modname!r}: {err}" + (f" ({hint})" if hint else ""),
                    allow_module_level=allow_module_level)
