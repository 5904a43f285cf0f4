"""Files in and out of a sandbox: the shapes Rexec's clients use (``?path=``, absolute inside
the sandbox)."""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from corral.shapes.common import Timestamp, described, query, refused_as, shape, text
from corral.shapes.query import INT_FROM_TEXT

# A path as the sandbox sees it: absolute, no NUL (a C string ends there), at most PATH_MAX.
# ``..`` and repeated slashes are allowed and normalised (``/home/user/../x`` is ``/home/x``):
# the result is resolved inside the sandbox, never on the host.
PATH_PATTERN = r"^/[^\x00]*$"
PATH_MAX = 4096

SandboxPath = Annotated[
    str,
    text(max_length=PATH_MAX, pattern=PATH_PATTERN, min_length=1),
    refused_as("path must be absolute (start with /), without NUL, at most 4096 characters"),
]


@query
class FilesQuery(TypedDict):
    path: Annotated[SandboxPath, described("An absolute path inside the sandbox")]


@query
class UploadQuery(TypedDict):
    path: Annotated[SandboxPath, described("The directory to upload into")]
    size: NotRequired[
        Annotated[
            int,
            Field(ge=0),
            INT_FROM_TEXT,
            described(
                "The file's size in bytes, when known: the upload then streams straight into "
                "the sandbox (a running one) instead of through a spool, and a file of another "
                "size is refused"
            ),
        ]
    ]


@shape
class FileEntry(TypedDict):
    name: str
    path: Annotated[str, described("Absolute, inside the sandbox")]
    size: Annotated[int, described("Bytes (0 for a directory)")]
    mode: Annotated[str, described("As ls -l writes it: drwxr-xr-x, -rw-r--r--, lrwxrwxrwx")]
    mod_time: Timestamp
    is_dir: bool


@shape
class FileList(TypedDict):
    """A directory's entries (not its subdirectories' entries), sorted by name."""

    path: str
    files: list[FileEntry]
    count: int


@shape
class FileUploaded(TypedDict):
    message: Annotated[str, described('"file uploaded successfully"')]
    filename: str
    path: Annotated[str, described("The uploaded file's absolute path")]
    size: Annotated[int, described("Bytes written")]


@shape
class FileChanged(TypedDict):
    """A delete's or a mkdir's answer."""

    message: str
    path: str
