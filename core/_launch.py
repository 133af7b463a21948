"""Starting and supervising the N processes of one training on this machine.

:func:`run_processes` starts one subprocess per process of a training over several
processes, each told its place through the environment (:meth:`Distributed.env`, a
free loopback port for the coordinator), and waits for all of them. When one fails,
the others are stopped at once (they would otherwise wait in a collective until
JAX's heartbeat gives up) and the error names the process and ends with its output.
If the supervisor itself is interrupted, every process is stopped; on Linux each is
also killed by the kernel should the supervisor die (``PR_SET_PDEATHSIG``,
set by :func:`die_with_supervisor`), so no
process outlives its training.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from jfx.core._distributed import Distributed
from jfx.errors import ComponentError

__all__ = ["WorkerFailedError", "die_with_supervisor", "free_port", "run_processes"]

_TAIL = 4000  # characters of a failed process's output kept in the error


class WorkerFailedError(ComponentError):
    """A process of a training over several processes failed (the others were stopped)."""

    def __init__(self, message: str, process_id: int, returncode: int, output: str):
        super().__init__(message)
        self.process_id = process_id
        self.returncode = returncode
        self.output = output


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (for the coordinator of a local training)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


SUPERVISOR_ENV = "JFX_SUPERVISOR_PID"


def die_with_supervisor() -> None:
    """In a process :func:`run_processes` started: be killed by the kernel when the
    supervisor dies (Linux ``PR_SET_PDEATHSIG``), so that no process outlives it even
    when it is killed itself. Called first thing by the worker entry point (not from
    ``preexec_fn``, which would fork a multithreaded JAX process)."""
    expected = os.environ.get(SUPERVISOR_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != int(expected):  # the supervisor died before the prctl took effect
        os._exit(1)


def _stop(procs: Sequence[subprocess.Popen], grace: float = 3.0) -> None:
    """Terminates the running processes, then kills what is left after ``grace`` seconds."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_processes(argv: Callable[[int], Sequence[str]], num_processes: int, *,
                  env: Mapping[str, str] | None = None, log_dir: str | Path | None = None,
                  timeout: float | None = None, what: str = "training process",
                  log_prefix: str = "process", check: Callable[[], None] | None = None) -> list[str]:
    """Runs ``num_processes`` processes of one training and waits for them all.

    Args:
        argv: process id → its command line.
        num_processes: how many.
        env: the environment (default: this process's), to which each process's
            ``JFX_NUM_PROCESSES``/``JFX_PROCESS_ID``/``JFX_COORDINATOR_ADDRESS`` are added.
        log_dir: where each process's output goes (``<log_prefix>-<i>.log``); default a
            temporary folder, removed afterwards.
        timeout: seconds before every process is stopped and an error raised.
        what: how errors name a process.
        check: called while waiting (every 50 ms); what it raises (e.g. ``KeyboardInterrupt``
            for a cancelled run) stops every process and reaches the caller.

    Returns:
        Each process's output (stdout and stderr together).

    Raises:
        WorkerFailedError: a process exited with an error (the others were stopped), or
            the timeout passed.
    """
    coordinator = f"127.0.0.1:{free_port()}"
    base = dict(os.environ if env is None else env)
    tmp = None
    if log_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="jfx-workers-")
        log_dir = tmp.name
    logs = [Path(log_dir) / f"{log_prefix}-{i}.log" for i in range(num_processes)]
    procs: list[subprocess.Popen] = []
    files = []
    try:
        for i in range(num_processes):
            spec = Distributed(num_processes, i, coordinator)
            f = open(logs[i], "wb")  # noqa: SIM115 - closed in finally
            files.append(f)
            procs.append(subprocess.Popen(list(argv(i)), env={**base, **spec.env(), SUPERVISOR_ENV: str(os.getpid())},
                                          stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                # The first to fail is the cause; the others fail after it (or wait for it).
                i = failed[0]
                _stop(procs)
                out = _read(logs[i])
                last = next((line.strip() for line in reversed(out.splitlines()) if line.strip()), "no output")
                raise WorkerFailedError(f"{what} {i} of {num_processes} failed (exit code {codes[i]}): {last}; the "
                                        f"others were stopped. Its output ends with:\n{out[-_TAIL:]}", i,
                                        codes[i] or 0, out)
            if all(c == 0 for c in codes):
                return [_read(p) for p in logs]
            if deadline is not None and time.monotonic() > deadline:
                _stop(procs)
                raise WorkerFailedError(f"the {num_processes} {what}es did not finish within {timeout:g}s; all "
                                        "were stopped", -1, -1, "")
            if check is not None:
                check()
            time.sleep(0.05)
    finally:
        _stop(procs)
        for f in files:
            f.close()
        if tmp is not None:
            tmp.cleanup()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
