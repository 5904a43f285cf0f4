"""Paths and names of the file routes: normalised before anything reaches the engine, and
file names made safe to put in a tar header and a ``Content-Disposition``.

A path is absolute and normalised lexically (``/home/user/../x`` is ``/home/x``, ``//a/./b`` is
``/a/b``), as Rexec's server does; where it leads is then the engine's to resolve, inside the
container's root (``backend.docker_service.archives``), so no spelling reaches the host.
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from backend.errors import InvalidParameters

NAME_MAX_BYTES = 255  # a file name's limit on ext4 (and most Linux filesystems)
# What a browser's FormData escapes in a multipart file name (WHATWG HTML, "multipart/form-data
# encoding algorithm"): the name is otherwise sent as it is, in UTF-8.
_FORM_ESCAPES = (("%0A", "\n"), ("%0D", "\r"), ("%22", '"'))


def normalised(path: str) -> str:
    """The absolute, normalised form of a path the query shape already checked (absolute, no
    NUL): ``..`` above ``/`` stays at ``/``."""
    clean = posixpath.normpath(path)
    # POSIX keeps a leading "//" as it is; here it is just "/".
    return "/" + clean.lstrip("/")


def parent_and_name(path: str) -> tuple[str, str]:
    """``/a/b`` as ``("/a", "b")``; ``/`` has no name."""
    parent, name = posixpath.split(path)
    return parent or "/", name


def child(directory: str, name: str) -> str:
    return posixpath.join(directory, name)


def checked_name(raw: str | None, field: str = "file") -> str:
    """An uploaded file's name, as one path component: not empty, not ``.`` or ``..``, no
    ``/`` and no NUL, at most 255 bytes. Spaces, newlines, leading dashes and any Unicode are
    fine: the name goes into a tar header, never onto a command line."""
    if raw is None or raw == "":
        raise InvalidParameters(f"the {field} part needs a file name (filename=...)", field=field)
    if raw in (".", "..") or "/" in raw or "\x00" in raw:
        raise InvalidParameters("a file name may not be . or .., nor hold / or NUL", field=field)
    if len(raw.encode("utf-8", "surrogateescape")) > NAME_MAX_BYTES:
        raise InvalidParameters(f"a file name is at most {NAME_MAX_BYTES} bytes", field=field)
    return raw


def form_filename(plain: str | None, extended: str | None) -> str | None:
    """The name a multipart part carries: ``filename*`` (RFC 5987, exact) when given, else
    ``filename`` with a browser's three escapes undone."""
    if extended:
        return extended
    if plain is None:
        return None
    for escaped, char in _FORM_ESCAPES:
        plain = plain.replace(escaped, char)
    return plain


def content_disposition(name: str) -> str:
    """``attachment`` with the name twice (RFC 6266): an ASCII stand-in every client reads,
    and the exact name in ``filename*`` (UTF-8, percent-encoded), which modern clients prefer."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in name)
    exact = quote(name.encode("utf-8", "surrogateescape"), safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"
