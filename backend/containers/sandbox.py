"""How one container row becomes a Docker sandbox: names, labels, limits and hardening.

Docker names and volume names are derived from the database ID, never from the user's name, so a
rename can never orphan a volume. The backend owns the lifecycle, so there is no restart policy.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from backend.db.models import Container
from backend.docker_service import SandboxSpec
from backend.settings import Settings

MOUNT_POINT = "/home/user"
LABEL_MANAGED = "corral.managed"
LABEL_DB_ID = "corral.db_id"
LABEL_USER_ID = "corral.user_id"
LABEL_INSTANCE = "corral.instance"

# Enough for a shell, a package manager and file ownership; everything else is dropped.
SHELL_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
)

# PID 1 of every sandbox sleeps, and exits at once on SIGTERM so a stop takes no grace period.
# Its output is the container's log (GET /api/containers/{id}/logs): a line when the sandbox
# starts and one when it is stopped; anything a user writes to /proc/1/fd/1 (or fd/2) in the
# sandbox appears between them.
KEEPALIVE_LOOP = (
    "trap 'echo corral: sandbox stopping; exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
)


def keepalive(row: Container) -> list[str]:
    """PID 1's command: say what the sandbox is, then sleep until stopped."""
    started = (
        f"corral: sandbox started: image {row.image}, role {row.role}, "
        f"memory {row.memory_mb} MB, cpu {row.cpu_shares} millicores, disk {row.disk_mb} MB"
    )
    return ["/bin/sh", "-c", f"echo {shlex.quote(started)}; {KEEPALIVE_LOOP}"]


def instance_labels(instance: str) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_INSTANCE: instance}


def sandbox_labels(row: Container, instance: str) -> dict[str, str]:
    return {**instance_labels(instance), LABEL_DB_ID: row.id, LABEL_USER_ID: row.user_id}


def sandbox_spec(
    row: Container,
    settings: Settings,
    instance: str,
    image_reference: str,
    name: str | None = None,
    extra_binds: Mapping[str, Mapping[str, str]] | None = None,
) -> SandboxSpec:
    environment = {
        "HOME": MOUNT_POINT,
        "TERM": "xterm-256color",
        "CORRAL_CONTAINER": row.name,
        **{str(k): str(v) for k, v in row.environment.items()},
    }
    return SandboxSpec(
        name=name or row.docker_name,
        image=image_reference,
        runtime=row.runtime,
        labels=sandbox_labels(row, instance),
        environment=environment,
        volume=row.volume_name,
        mount_point=MOUNT_POINT,
        memory_mb=row.memory_mb,
        cpu_millicores=row.cpu_shares,
        pids_limit=settings.pids_limit,
        network_mode=settings.sandbox_network if row.runtime == "runsc" else "bridge",
        hostname=row.name[:63],
        command=keepalive(row),
        cap_add=SHELL_CAPABILITIES,
        extra_binds=dict(extra_binds or {}),
        log_max_mb=settings.sandbox_log_max_mb,
        volume_labels=instance_labels(instance),
    )
