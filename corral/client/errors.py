"""Everything the client raises: one base class, API errors typed by the contract's strings.

The server's error body is ``{"error": "<short string>", "message": "<sentence>", ...}``; the
short strings are the contract clients match on. ``ApiError`` carries it unchanged (``.error``,
``.status``, ``.message``, ``.body``), and ``api_error()`` picks the subclass named for it, so a
caller can write ``except ContainerNotFound`` instead of comparing strings.
"""

from __future__ import annotations

import base64
import os
from typing import Any, ClassVar


class CorralClientError(Exception):
    """Base of everything this client raises."""


class TransportError(CorralClientError):
    """The server could not be reached, or answered with something that is not the API."""


class StreamClosed(CorralClientError):
    """An event WebSocket closed; ``code`` is its close code (None when the connection just
    dropped)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"the event stream closed (code {code}){': ' + reason if reason else ''}")


class ApiError(CorralClientError):
    """The server refused a request: the contract's error body, as received."""

    #: The contract's ``error`` string this class stands for ("" for the base class).
    error_string: ClassVar[str] = ""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.error = str(body.get("error") or f"http {status}")
        self.message = str(body.get("message") or self.error)
        super().__init__(self.message)

    @property
    def field(self) -> str | None:
        """The offending field of an ``invalid parameters`` error, when the server named one."""
        value = self.body.get("field")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        return f"{self.error}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, body={self.body!r})"


class InvalidParameters(ApiError):
    error_string = "invalid parameters"


class InvalidJson(ApiError):
    error_string = "invalid json"


class InvalidContainerName(ApiError):
    error_string = "invalid container name"


class UnsupportedImage(ApiError):
    error_string = "unsupported image"


class UnsupportedRole(ApiError):
    error_string = "unsupported role"


class ContainerNotRunning(ApiError):
    error_string = "container is not running"


class NotSupportedForAgents(ApiError):
    error_string = "not supported for agents"


class Unauthorized(ApiError):
    error_string = "unauthorized"


class NotAuthorized(ApiError):
    error_string = "not authorized"


class GuestSessionExpired(ApiError):
    error_string = "guest session expired"


class ContainerLimitReached(ApiError):
    error_string = "container limit reached"


class ContainerNotFound(ApiError):
    error_string = "container not found"


class AgentNotFound(ApiError):
    error_string = "agent not found"


class VolumeNotFound(ApiError):
    error_string = "volume not found"


class EngineNotFound(ApiError):
    error_string = "engine not found"


class NotFound(ApiError):
    error_string = "not found"


class MethodNotAllowed(ApiError):
    error_string = "method not allowed"


class NameTaken(ApiError):
    error_string = "container with this name already exists"


class UsernameTaken(ApiError):
    error_string = "username taken"


class PayloadTooLarge(ApiError):
    error_string = "request too large"


class RateLimited(ApiError):
    """429: more requests than the server's rate limit allows; retry after ``retry_after``
    seconds (the ``Retry-After`` header, also in the body)."""

    error_string = "too many requests"

    @property
    def retry_after(self) -> int | None:
        value = self.body.get("retry_after")
        return value if isinstance(value, int) else None


class GuestLimitReached(RateLimited):
    """429: the server has as many guest sessions as it allows at once."""

    error_string = "guest limit reached"


class DockerUnavailable(ApiError):
    error_string = "docker unavailable"


class NoEngineAvailable(ApiError):
    """503: engines answer, but none may take a new sandbox (drained, full, or without the
    runtime); the message says which."""

    error_string = "no engine available"


class DatabaseBusy(ApiError):
    """503: the server's database stayed locked (or conflicted) past its timeout; retry."""

    error_string = "database busy"


class DatabaseUnavailable(ApiError):
    """503: the server's database server cannot be reached; retry once it is back."""

    error_string = "database unavailable"


class OperationFailed(ApiError):
    """``failed to start container``, ``failed to stop container``, ``failed to create
    container``, ...: a Docker operation failed on the server (500)."""

    error_string = "failed to "


class FileNotFound(ApiError):
    """404: nothing at the path in the sandbox."""

    error_string = "file not found"


class PathIsDirectory(ApiError):
    """400: a download of a directory (list it, or copy it with corral cp)."""

    error_string = "path is a directory"


class NotADirectory(ApiError):
    error_string = "not a directory"


class FileExists(ApiError):
    error_string = "file exists"


class SandboxRefused(ApiError):
    """409: the sandbox's own rm failed (its words are the message)."""

    error_string = "sandbox refused"


class InsufficientStorage(ApiError):
    """507: the file does not fit (the sandbox's disk quota, or the server's disk)."""

    error_string = "insufficient storage"


class InternalError(ApiError):
    error_string = "internal error"


ERRORS: dict[str, type[ApiError]] = {
    cls.error_string: cls
    for cls in (
        InvalidParameters,
        InvalidJson,
        InvalidContainerName,
        UnsupportedImage,
        UnsupportedRole,
        ContainerNotRunning,
        NotSupportedForAgents,
        Unauthorized,
        NotAuthorized,
        GuestSessionExpired,
        ContainerLimitReached,
        ContainerNotFound,
        AgentNotFound,
        VolumeNotFound,
        EngineNotFound,
        NotFound,
        MethodNotAllowed,
        NameTaken,
        UsernameTaken,
        PayloadTooLarge,
        RateLimited,
        GuestLimitReached,
        DockerUnavailable,
        NoEngineAvailable,
        FileNotFound,
        PathIsDirectory,
        NotADirectory,
        FileExists,
        SandboxRefused,
        DatabaseBusy,
        DatabaseUnavailable,
        InsufficientStorage,
        InternalError,
    )
}

# When there is no body to read (a refused WebSocket handshake, a proxy's error page), the status
# is all there is; these are the contract's strings for the statuses it uses.
_BY_STATUS: dict[int, str] = {
    400: "invalid parameters",
    401: "unauthorized",
    403: "not authorized",
    404: "not found",
    405: "method not allowed",
    413: "request too large",
    429: "too many requests",
    500: "internal error",
    503: "docker unavailable",
}


def api_error(status: int, body: Any) -> ApiError:
    """The typed error for a refused request's status and (parsed JSON) body."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        error = _BY_STATUS.get(status, f"http {status}")
        body = {"error": error, "message": f"The server answered {status} without an error body."}
    error = str(body["error"])
    cls = ERRORS.get(error)
    if cls is None and error.startswith(OperationFailed.error_string):
        cls = OperationFailed
    return (cls or ApiError)(status, body)


def handshake_headers() -> dict[str, str]:
    """The headers of a WebSocket handshake. aiohttp drops the body of a refused handshake, so
    a client asks again with a plain request carrying these: the server refuses it the same way
    (before the upgrade, with the contract's JSON body), and refuses a request that is no
    handshake before looking at anything else."""
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
