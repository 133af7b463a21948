"""The check every public-surface pin shares: ``__all__`` is exactly the pinned names."""

from __future__ import annotations

from types import ModuleType


def assert_public_surface(module: ModuleType, expected: set[str]) -> None:
    """``module.__all__`` lists ``expected`` once each, every name resolves, and a star
    import gives exactly them (what a user's ``from module import *`` sees)."""
    assert set(module.__all__) == expected
    assert len(module.__all__) == len(expected), "a name is listed twice"
    for name in expected:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)  # noqa: S102 - the star import a user writes
    assert set(namespace) - {"__builtins__"} == expected
