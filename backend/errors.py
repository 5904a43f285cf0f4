"""The one error hierarchy of the backend.

Handlers and services raise these; a single middleware (``backend.middleware``) turns them into the
contract's JSON body ``{"error", "message", ...extra}``. The ``error`` strings are part of the API
contract: clients match on them, so they are spelled exactly once, here.
"""

from __future__ import annotations

import re
from typing import Any

_SANITIZERS = (
    (re.compile(r"unix://\S+"), "<socket>"),
    (re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)*[\w.@+-]+"), "<path>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<address>"),
    (re.compile(r"\[[0-9a-fA-F:]+\](?::\d+)?"), "<address>"),
)


def sanitize(message: str) -> str:
    """Remove host paths, socket names and network addresses from an engine's error text."""
    for pattern, replacement in _SANITIZERS:
        message = pattern.sub(replacement, message)
    return message.strip()[:500]


class CorralError(Exception):
    """Base of every error that reaches a client."""

    status: int = 500
    error: str = "internal error"
    default_message: str = "Something went wrong on the server; try again, then check its log."
    retry_after_s: int | None = None  # sent as ``Retry-After`` when the client should retry

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries (``Retry-After`` on a 429, ``Allow`` on a 405)."""
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class InvalidParameters(CorralError):
    status = 400
    error = "invalid parameters"
    default_message = "The request's parameters are not valid."

    def __init__(self, message: str, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra["field"] = field
        super().__init__(message, **extra)


class InvalidJson(CorralError):
    status = 400
    error = "invalid json"
    default_message = "The request body is not valid JSON; send a JSON object."


class InvalidRequest(CorralError):
    """A request aiohttp could not parse (a malformed request line, header or chunked body)."""

    status = 400
    error = "invalid request"
    default_message = "The request is not a well-formed HTTP/1.1 request."


class InvalidContainerName(CorralError):
    status = 400
    error = "invalid container name"
    default_message = (
        "Names are 1-64 characters of letters, digits and hyphens, not starting with a hyphen."
    )


class UnsupportedImage(CorralError):
    status = 400
    error = "unsupported image"


class UnsupportedRole(CorralError):
    status = 400
    error = "unsupported role"


class ContainerNotRunning(CorralError):
    status = 400
    error = "container is not running"
    default_message = "The container is not running; start it first."


class NotSupportedForAgents(CorralError):
    status = 400
    error = "not supported for agents"
    default_message = "This action applies to containers, not to agents."


class Unauthorized(CorralError):
    status = 401
    error = "unauthorized"
    default_message = "A valid token is required: send 'Authorization: Bearer <token>'."


class NotAuthorized(CorralError):
    status = 403
    error = "not authorized"
    default_message = "Your token does not allow this action."


class GuestSessionExpired(CorralError):
    status = 403
    error = "guest session expired"
    default_message = (
        "Your guest session has ended; containers can no longer be started. Sign in to continue."
    )


class ContainerLimitReached(CorralError):
    status = 403
    error = "container limit reached"


class ContainerNotFound(CorralError):
    status = 404
    error = "container not found"
    default_message = "No container with this ID exists for you."


class VolumeNotFound(CorralError):
    status = 404
    error = "volume not found"
    default_message = "You have no kept volume with this name (GET /api/volumes lists them)."


class AgentNotFound(CorralError):
    status = 404
    error = "agent not found"
    default_message = "No agent with this ID exists."


class NotFound(CorralError):
    status = 404
    error = "not found"
    default_message = "There is no such route or resource."


class MethodNotAllowed(CorralError):
    status = 405
    error = "method not allowed"

    def __init__(self, method: str, allowed: set[str] | frozenset[str]) -> None:
        self.allowed = ", ".join(sorted(allowed))
        super().__init__(f"{method} is not allowed here; use {self.allowed}.")

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Allow": self.allowed}


class Conflict(CorralError):
    status = 409
    error = "conflict"


class NameTaken(Conflict):
    error = "container with this name already exists"
    default_message = "You already have a container with this name; choose another."


class UsernameTaken(Conflict):
    error = "username taken"
    default_message = "This username belongs to a registered user; choose another."


class PayloadTooLarge(CorralError):
    status = 413
    error = "request too large"


class RequestHeaderTooLarge(CorralError):
    """The request line (its URL) or a header is over aiohttp's limit."""

    status = 431
    error = "request too large"


class RateLimited(CorralError):
    """429 with ``Retry-After``: the caller sent more than its rate limit allows
    (``backend.ratelimit``); nothing was done."""

    status = 429
    error = "too many requests"

    def __init__(self, message: str, retry_after: int, **extra: Any) -> None:
        self.retry_after_s = retry_after
        super().__init__(message, retry_after=retry_after, **extra)


class GuestLimitReached(RateLimited):
    """429: as many guest sessions are live as the backend allows (``max_guest_sessions``)."""

    error = "guest limit reached"


class DockerUnavailable(CorralError):
    status = 503
    error = "docker unavailable"
    default_message = (
        "The Docker engine cannot be reached; start it (just engine) and try again. "
        "Nothing was changed."
    )


class NoEngineAvailable(CorralError):
    """Engines answer, but none may take a new sandbox: every one allowed is drained, full (its
    memory is placed), lacks the runtime, or lacks the image (backend.engines.placement). The
    message says which; it passes when an engine is undrained or a sandbox deleted."""

    status = 503
    error = "no engine available"
    default_message = "No Docker engine can take a new sandbox now; nothing was changed."


class EngineNotFound(CorralError):
    status = 404
    error = "engine not found"
    default_message = "No engine of that name is configured; GET /api/engines lists them."


class RetryLater(CorralError):
    """The server's own storage cannot take a write now (the database is locked by another
    process, its server is down, or its disk is full). It passes by itself: the same request
    may succeed later, and background work (the watcher's syncs) retries until it does. A
    change already made on Docker when the write failed is recorded by that retry."""

    status = 503


class DatabaseBusy(RetryLater):
    error = "database busy"
    default_message = (
        "The database is locked by another process and did not free up in time; try again in a "
        "few seconds."
    )
    retry_after_s = 2


class DatabaseUnavailable(RetryLater):
    """The database server cannot be reached (refused, starting or shutting down, the
    connection lost): it passes once the server is back."""

    error = "database unavailable"
    default_message = "The database server cannot be reached; try again in a few seconds."
    retry_after_s = 5


class InsufficientStorage(RetryLater):
    status = 507
    error = "insufficient storage"
    default_message = (
        "The server's data disk is full, so the change could not be saved; try again once an "
        "operator has freed space."
    )


class FileNotFound(CorralError):
    status = 404
    error = "file not found"
    default_message = "Nothing exists at this path in the sandbox."


class PathIsDirectory(CorralError):
    status = 400
    error = "path is a directory"


class NotADirectory(CorralError):
    status = 400
    error = "not a directory"


class FileExists(Conflict):
    error = "file exists"


class SandboxRefused(Conflict):
    """409: the sandbox itself refused a file operation (``rm`` of something it may not
    remove: /proc, a mount point); its own words are the message."""

    error = "sandbox refused"


class DiskQuotaExceeded(CorralError):
    """507: the sandbox's disk (its volume's quota) cannot hold the upload; nothing was
    written. Unlike ``InsufficientStorage`` this does not pass by itself: free space in the
    sandbox, or give it a larger disk (PATCH .../settings)."""

    status = 507
    error = "insufficient storage"


class OperationFailed(CorralError):
    """A Docker operation failed; ``error`` names the operation (``failed to start container``)."""

    status = 500

    def __init__(self, error: str, message: str, **extra: Any) -> None:
        self.error = error
        super().__init__(sanitize(message), **extra)


# Docker-side errors, raised by the Docker service and translated by the container services into
# the operation's contract error. Only DockerUnavailable reaches the middleware unwrapped.


class DockerError(Exception):
    """A Docker call failed for a reason other than the engine being unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class DockerNotFound(DockerError):
    """The container, image or volume named does not exist on the engine."""


class DockerConflict(DockerError):
    """The engine refused because of a conflicting state (a name in use, a volume in use)."""


class VolumeGone(DockerError):
    """A sandbox's volume is missing, or is not the one Corral made (it lacks the labels).
    Docker would silently make an empty volume of that name, hiding that the data is gone, so
    no sandbox is ever created on it."""
