"""Training over several processes: data parallel with ``jax.distributed``.

One training runs as N processes (on one machine or many), each with its own local
devices. :func:`initialize` joins them through ``jax.distributed.initialize`` (a
coordinator at ``coordinator_address``, which process 0 serves); from then on
``jax.devices()`` lists every process's devices and the training engine's mesh spans
them all. Each process reads its own shard of the examples
(:meth:`jfx.core.Dataset.shard`), turns its local rows into its part of one global
batch (``jax.make_array_from_process_local_data``), and the one jitted step's
gradient all-reduce runs over every device: through XLA's CPU collectives (gloo) on
CPU, NCCL on GPU; the code path is the same.

A launcher tells each process its place through the environment:
``JFX_NUM_PROCESSES``, ``JFX_PROCESS_ID`` and ``JFX_COORDINATOR_ADDRESS``
(``host:port``); :meth:`Distributed.from_env` reads them (and the names the Kubeflow
Training Operator's JAXJob sets: ``NUM_PROCESSES``, ``PROCESS_ID``,
``COORDINATOR_ADDRESS`` with ``COORDINATOR_PORT``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from jfx.errors import InvalidArgumentError

__all__ = ["Distributed", "initialize", "initialize_distributed", "current", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID", "ENV_COORDINATOR"]

ENV_NUM_PROCESSES = "JFX_NUM_PROCESSES"
ENV_PROCESS_ID = "JFX_PROCESS_ID"
ENV_COORDINATOR = "JFX_COORDINATOR_ADDRESS"

_initialized: Distributed | None = None


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a training over several processes.

    Args:
        num_processes: how many processes train together (>= 1).
        process_id: this process's index, ``0 .. num_processes - 1``; process 0 hosts
            the coordinator, writes checkpoints and exports the model.
        coordinator_address: ``host:port`` of process 0's coordinator service.
        initialization_timeout: seconds to wait for every process to join.

    Example:
        >>> Distributed(2, 0, "127.0.0.1:12345").is_chief
        True
    """

    num_processes: int
    process_id: int
    coordinator_address: str
    initialization_timeout: int = 120

    def __post_init__(self) -> None:
        if isinstance(self.num_processes, bool) or not isinstance(self.num_processes, int) or self.num_processes < 1:
            raise InvalidArgumentError(f"num_processes must be a positive int, got {self.num_processes!r}")
        if (isinstance(self.process_id, bool) or not isinstance(self.process_id, int)
                or not 0 <= self.process_id < self.num_processes):
            raise InvalidArgumentError(
                f"process_id must be in 0..{self.num_processes - 1}, got {self.process_id!r}")
        host, _, port = str(self.coordinator_address).rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgumentError(f"coordinator_address must be host:port, got {self.coordinator_address!r}")

    @property
    def is_chief(self) -> bool:
        """Whether this is process 0 (the one that writes checkpoints and exports)."""
        return self.process_id == 0

    def env(self) -> dict[str, str]:
        """The environment variables that make :meth:`from_env` give this spec back."""
        return {ENV_NUM_PROCESSES: str(self.num_processes), ENV_PROCESS_ID: str(self.process_id),
                ENV_COORDINATOR: self.coordinator_address}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Distributed | None:
        """The spec a launcher put in the environment, or None when there is none.

        Reads ``JFX_NUM_PROCESSES``/``JFX_PROCESS_ID``/``JFX_COORDINATOR_ADDRESS``, else
        the JAXJob's ``NUM_PROCESSES``/``PROCESS_ID``/``COORDINATOR_ADDRESS`` (+
        ``COORDINATOR_PORT``).

        Raises:
            InvalidArgumentError: the variables are set but incomplete or malformed.
        """
        env = os.environ if environ is None else environ
        for num_key, id_key, addr_key in ((ENV_NUM_PROCESSES, ENV_PROCESS_ID, ENV_COORDINATOR),
                                          ("NUM_PROCESSES", "PROCESS_ID", "COORDINATOR_ADDRESS")):
            present = [k for k in (num_key, id_key, addr_key) if env.get(k)]
            if not present:
                continue
            missing = [k for k in (num_key, id_key, addr_key) if not env.get(k)]
            if missing:
                raise InvalidArgumentError(f"the environment sets {present} but not {missing}; a training over "
                                           "several processes needs all three")
            address = env[addr_key]
            if ":" not in address and env.get("COORDINATOR_PORT") and addr_key == "COORDINATOR_ADDRESS":
                address = f"{address}:{env['COORDINATOR_PORT']}"
            try:
                num, pid = int(env[num_key]), int(env[id_key])
            except ValueError as err:
                raise InvalidArgumentError(f"{num_key}={env[num_key]!r} and {id_key}={env[id_key]!r} must be "
                                           "integers") from err
            return cls(num, pid, address)
        return None


def initialize(spec: Distributed) -> None:
    """Joins this process to the training ``spec`` describes (once per process).

    On CPU the collectives run through gloo (``jax_cpu_collectives_implementation``).
    A second call with the same spec does nothing; with another one it is refused, as
    ``jax.distributed`` cannot be re-initialised in one process.
    """
    global _initialized
    if _initialized is not None:
        if _initialized != spec:
            raise InvalidArgumentError(f"this process already trains as {_initialized}; it cannot join {spec}")
        return
    import jax

    if spec.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        try:
            jax.distributed.initialize(spec.coordinator_address, spec.num_processes, spec.process_id,
                                       initialization_timeout=spec.initialization_timeout)
        except RuntimeError as err:
            if "before" in str(err):
                raise InvalidArgumentError(
                    "JAX already ran something in this process, so it can no longer join a training over several "
                    "processes: call jfx.core.initialize_distributed() (or Distributed.from_env()) first thing, "
                    f"before building the model ({err})") from err
            raise
    _initialized = spec


def current() -> Distributed | None:
    """The spec this process joined with :func:`initialize`, or None."""
    return _initialized


def initialize_distributed(spec: Distributed | None = None) -> Distributed | None:
    """Joins the training over several processes that ``spec`` (default: the environment,
    :meth:`Distributed.from_env`) describes; returns the spec, or None when there is none.

    Call it first thing in a program run as one of several processes, before anything
    uses JAX (building a model does): ``jax.distributed`` must start before JAX's
    backends do. :func:`jfx.core.fit` calls it too (a no-op when already joined).
    """
    spec = Distributed.from_env() if spec is None else spec
    if spec is not None:
        initialize(spec)
    return spec
