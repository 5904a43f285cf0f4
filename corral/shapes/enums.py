"""The API's closed sets of words, one ``StrEnum`` each.

Members are strings (``Status.RUNNING == "running"``), so they compare equal to the plain strings
that arrive in JSON, hash alike (``"running" in {Status.RUNNING}``), and serialize as themselves:
the backend stores and sends them as they are, and the console compares what the client hands it
with them, without converting anything.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """What a container, or an agent, is doing."""

    CREATING = "creating"
    CONFIGURING = "configuring"  # the sandbox runs; its role is being put in place
    RUNNING = "running"
    STOPPED = "stopped"
    MISSING = "missing"  # its Docker container is gone; start recreates it
    ERROR = "error"
    OFFLINE = "offline"  # agents only
    DELETED = "deleted"  # only in container_deleted events
    # Its engine cannot be reached: nothing is known of the sandbox until it answers again
    # (never stored: the list says it while the engine is down, and container_updated events
    # carry it when the engine goes and the stored status when it comes back).
    UNKNOWN = "unknown"


# A sandbox runs in both: ``configuring`` is a running sandbox whose role is being installed.
RUNNING_STATUSES = frozenset({Status.RUNNING, Status.CONFIGURING})
# What start can act on (stop acts on RUNNING_STATUSES).
STARTABLE_STATUSES = frozenset({Status.STOPPED, Status.MISSING, Status.ERROR})


class EventType(StrEnum):
    """The ``type`` of a message on the events stream: ``list`` first (or after a gap too old to
    replay), then one event per change."""

    LIST = "list"
    CONTAINER_CREATED = "container_created"
    CONTAINER_PROGRESS = "container_progress"
    CONTAINER_STARTED = "container_started"
    CONTAINER_STOPPED = "container_stopped"
    CONTAINER_DELETED = "container_deleted"
    CONTAINER_UPDATED = "container_updated"
    AGENT_CONNECTED = "agent_connected"
    AGENT_DISCONNECTED = "agent_disconnected"


class Scope(StrEnum):
    """What an API token may do: ``read`` (GET), ``write`` (everything else); ``agent`` alone
    opens nothing but ``/ws/agents/connect``."""

    READ = "read"
    WRITE = "write"
    AGENT = "agent"


FULL_SCOPES = frozenset({Scope.READ, Scope.WRITE})


class RoleState(StrEnum):
    """Where a container's role stands in its current sandbox."""

    NONE = "none"  # the role installs nothing
    PENDING = "pending"  # due: a reinstall, or one cut off by a stop (resumed at the next start)
    INSTALLING = "installing"  # its role image is being built (or, in the fallback, installed)
    INSTALLED = "installed"
    FAILED = "failed"  # role_error says why


# Role work that is due or under way.
ACTIVE_ROLE_STATES = frozenset({RoleState.PENDING, RoleState.INSTALLING})


class Stage(StrEnum):
    """Where a create, or a role's install, stands: the ``stage`` of a ``container_progress``
    event."""

    VOLUME = "volume"  # preparing the volume
    CONTAINER = "container"  # making the Docker container
    STARTING = "starting"
    CONFIGURING = "configuring"  # the sandbox runs; its role is being put in place
    RUNNING = "running"  # done (``complete``)
    FAILED = "failed"  # the create failed (``complete``, ``error``)
    ROLE_QUEUED = "role_queued"  # waiting for another build of the same role image
    ROLE_DOWNLOAD = "role_download"  # the role's packages downloaded on the host
    ROLE_IMAGE = "role_image"  # the role image being built
    ROLE_INSTALL = "role_install"  # the fallback: apt in the sandbox (``package``)
    ROLE_DONE = "role_done"  # ``complete``
    ROLE_FAILED = "role_failed"  # ``complete``, ``error``
