"""Keep the load generator off the cores of the system it measures, as MLPerf keeps LoadGen apart
from the system under test: the generator's threads on one CPU, the server's process trees on the
others, so a busy server cannot delay the sends and "capacity per core" is measured on a known core
count. Linux only; a machine with one CPU (or a server that needs every CPU) is left as it is, and
the result says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil


@dataclass
class Isolation:
    """Which CPUs the generator and the server were given, or why they were not separated."""

    generator_cpus: list[int] = field(default_factory=list)
    server_cpus: list[int] = field(default_factory=list)
    reason: str = ""  #: "" when isolated, else why not
    _before: set[int] = field(default_factory=set, repr=False)  #: the generator's CPUs before

    @property
    def isolated(self) -> bool:
        return not self.reason

    def to_dict(self) -> dict:
        return {"isolated": self.isolated, "generator_cpus": self.generator_cpus,
                "server_cpus": self.server_cpus, "reason": self.reason}


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` (affinity is per thread on Linux) onto ``cpus``; a thread gone is skipped."""
    for tid in _threads(pid):
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, PermissionError):
            continue


def pin_trees(roots: Iterable[int], cpus: Iterable[int]) -> None:
    """Each root process and its descendants onto ``cpus`` (children forked later inherit it)."""
    cpus = set(cpus)
    for root in roots:
        try:
            procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            _pin(p.pid, cpus)


def isolate(server_roots: Iterable[int], server_cores_needed: int = 1) -> Isolation:
    """Pin this process (the generator) to one CPU and the server's trees to the rest, if the machine
    has a CPU to spare beyond the ``server_cores_needed``; :func:`release` undoes the generator's part."""
    if not hasattr(os, "sched_setaffinity"):
        return Isolation(reason="CPU affinity is not available on this platform")
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return Isolation(reason=f"{len(allowed)} CPU available: nothing to keep the generator apart on")
    if server_cores_needed > len(allowed) - 1:
        return Isolation(
            reason=f"the server uses {server_cores_needed} cores of {len(allowed)}: none left for the generator alone"
        )
    generator, server = allowed[:1], allowed[1:]
    out = Isolation(generator, server, _before=set(allowed))
    pin_trees(server_roots, server)
    _pin(os.getpid(), set(generator))
    return out


def release(isolation: Isolation) -> None:
    """Give the generator's process its CPUs back (the server's processes end with the server)."""
    if isolation.isolated and isolation._before:
        _pin(os.getpid(), isolation._before)
