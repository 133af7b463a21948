"""The docstring examples of the package run, and show what they say they show.

Each docstring with examples is one test, found in the modules of the importable package
(so each module is imported once, under its real name). Left out: ``__main__`` (running it is
the command line) and the migration scripts (alembic runs them, with its own context).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import jfx

SKIP_MODULES = ("jfx.__main__", "jfx.metadata.migrations")


def _modules() -> list[str]:
    names = ["jfx"] + [m.name for m in pkgutil.walk_packages(jfx.__path__, "jfx.", onerror=lambda _: None)]
    return [n for n in names if not n.startswith(SKIP_MODULES)]


def _docstring_examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        found += [t for t in finder.find(module, name) if t.examples]
    return sorted(found, key=lambda t: t.name)


EXAMPLES = _docstring_examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(example: doctest.DocTest, tmp_path, monkeypatch) -> None:
    # Examples that record runs write to a fresh JFX_HOME, and files land in an empty folder.
    monkeypatch.setenv("JFX_HOME", str(tmp_path / "jfx-home"))
    monkeypatch.delenv("JFX_METADATA_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    example.globs = dict(example.globs)
    out: list[str] = []
    result = runner.run(example, out=out.append, clear_globs=True)
    assert result.failed == 0, "".join(out)


def test_the_examples_of_every_package_are_collected() -> None:
    names = {t.name for t in EXAMPLES}
    for name in ("jfx", "jfx.core._train.fit", "jfx.metadata._store.MetadataStore", "jfx.pipelines._component.resolver"):
        assert name in names
    assert {n.split(".")[1] for n in names if n.count(".") > 1} >= {"components", "core", "metadata", "orchestrators", "pipelines"}
