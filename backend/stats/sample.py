"""One usage sample of a sandbox, computed from the engine's raw stats as ``docker stats`` does.

Under gVisor the engine measures the sandbox from the host: CPU is the time of the whole sandbox
(the gVisor kernel included, so an idle sandbox shows a little), memory is the sandbox's cgroup
(its tmpfs files included, the page cache of inactive files excluded), and ``pids`` counts the
host tasks (threads) of the sandbox, not the processes inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_percent: float  # percent of one host core, so up to 100 x the number of cores
    memory_used_mb: float
    memory_limit_mb: float
    pids: int


@dataclass(frozen=True, slots=True)
class Sample:
    """The latest usage of one sandbox, as the API sends it."""

    db_id: str
    docker_id: str
    name: str
    user_id: str
    usage: Usage
    timestamp: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.docker_id,
            "db_id": self.db_id,
            "name": self.name,
            "cpu_percent": self.usage.cpu_percent,
            "memory_used_mb": self.usage.memory_used_mb,
            "memory_limit_mb": self.usage.memory_limit_mb,
            "pids": self.usage.pids,
            "timestamp": self.timestamp,
        }


def is_stopped(raw: dict[str, Any]) -> bool:
    """The engine's sample of a container that does not run: every field zero, read in year 1."""
    return str(raw.get("read", "")).startswith("0001-")


def usage_of(raw: dict[str, Any], previous: dict[str, Any] | None = None) -> Usage | None:
    """The usage in ``raw``; None when CPU cannot be computed yet (a stream's first sample has no
    previous reading, and ``previous`` is the one this stream sent before, if any)."""
    if is_stopped(raw):
        return None
    cpu = raw.get("cpu_stats") or {}
    pre = raw.get("precpu_stats") or {}
    if not pre.get("system_cpu_usage") and previous is not None:
        pre = previous.get("cpu_stats") or {}
    percent = _cpu_percent(cpu, pre)
    if percent is None:
        return None
    memory = raw.get("memory_stats") or {}
    return Usage(
        cpu_percent=round(percent, 2),
        memory_used_mb=round(_memory_used(memory) / MB, 1),
        memory_limit_mb=round(int(memory.get("limit") or 0) / MB, 1),
        pids=int((raw.get("pids_stats") or {}).get("current") or 0),
    )


def _cpu_percent(cpu: dict[str, Any], pre: dict[str, Any]) -> float | None:
    system_before = int(pre.get("system_cpu_usage") or 0)
    system_now = int(cpu.get("system_cpu_usage") or 0)
    if not system_before or system_now <= system_before:
        return None
    total_now = int((cpu.get("cpu_usage") or {}).get("total_usage") or 0)
    total_before = int((pre.get("cpu_usage") or {}).get("total_usage") or 0)
    cores = int(cpu.get("online_cpus") or 0) or len(
        (cpu.get("cpu_usage") or {}).get("percpu_usage") or [None]
    )
    delta = max(0, total_now - total_before)
    return delta / (system_now - system_before) * cores * 100.0


def _memory_used(memory: dict[str, Any]) -> int:
    """Usage minus inactive file cache, as the docker CLI reports it (cgroup v1 and v2)."""
    usage = int(memory.get("usage") or 0)
    stats = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        value = stats.get(key)
        if isinstance(value, int) and value < usage:
            return usage - value
    return usage
