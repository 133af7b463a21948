"""Starting subprocesses from tests: the jfx under test, and Ctrl-C as a user's terminal delivers it."""

from __future__ import annotations

import os
from pathlib import Path

import jfx

RESOURCES = Path(__file__).parent
# The jfx under test (not resolved: it may be reached through a link named jfx), then the
# test components; then whatever the caller's PYTHONPATH held.
JFX_PARENT = Path(jfx.__file__).parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment, with the jfx under test and tests/resources importable."""
    paths = [str(JFX_PARENT), str(RESOURCES), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **extra}


# The first lines of a test's child script that it interrupts with SIGINT: the child takes
# SIGINT as Ctrl-C (KeyboardInterrupt) whatever the parent does. A parent that ignores
# SIGINT (nohup, some CI agents, a shell's background job) passes the ignored disposition
# on through exec, and Python then installs no KeyboardInterrupt handler: the Ctrl-C tests
# would wait out their timeouts. (Set in the child, not in a preexec_fn, which is unsafe
# in a test process that runs threads.)
SIGINT_AS_CTRL_C = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
