"""The sandbox's volume read and written in place on the host, where the backend mounts it.

The engine's archive API lists a directory only by streaming its whole subtree, file data
included (a directory holding a 256 MB file took 3 s to list; Debian's ``/`` 6 s). The user's
data is on the volume, which the backend itself mounts (``backend.containers.volumes``), so a
directory there is read in place instead, with one rule that keeps it inside the volume: every
component is opened relative to the one before with ``O_NOFOLLOW | O_DIRECTORY`` (a symlink
or a file anywhere on the way stops the walk, and the caller asks the engine, which resolves
links inside the sandbox), and entries are only ``lstat``ed, never followed.

The same walk serves the rest: a download reads a regular file in place (``open_on_host``, its
last component ``O_NOFOLLOW`` too) rather than through the engine's tar stream; a delete removes
in place (``remove_on_host``); an upload is written in place (``NewFile``), since the engine's
archive API would take every byte a second time (and on a stopped sandbox could keep a partial
file). It goes to an unnamed file in the directory (``O_TMPFILE``), which takes its name only
once complete: the name never shows a partial file, and a failed upload leaves nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO never blocks
# An unnamed file in the folder (no O_EXCL: that would forbid ever linking it).
_NEW_FLAGS = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC
# An upload's file mode, as the engine's archive gives one (tar_stream.file_header).
FILE_MODE = 0o644


@dataclass(frozen=True)
class HostEntry:
    name: str
    size: int
    mode: int  # st_mode: type and permission bits
    mtime: float


def list_on_host(mountpoint: Path, parts: list[str]) -> list[HostEntry] | None:
    """The entries of ``mountpoint/parts...``; None when the walk cannot stay on plain
    directories (a symlink, a file, a missing name): the engine answers then."""
    fd = open_folder(mountpoint, parts)
    if fd is None:
        return None
    try:
        entries = []
        with os.scandir(fd) as found:
            for entry in found:
                info = entry.stat(follow_symlinks=False)
                entries.append(HostEntry(entry.name, info.st_size, info.st_mode, info.st_mtime))
        return entries
    finally:
        os.close(fd)


def open_folder(mountpoint: Path, parts: list[str]) -> int | None:
    """An open descriptor of the directory ``mountpoint/parts...``, reached on plain
    directories only; None otherwise."""
    if any(part in ("", ".", "..") or "/" in part for part in parts):
        return None
    try:
        fd = os.open(mountpoint, _FLAGS)
    except OSError:
        return None
    for part in parts:
        try:
            inner = os.open(part, _FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = inner
    return fd


def open_on_host(mountpoint: Path, parts: list[str]) -> tuple[int, int] | None:
    """A descriptor of the regular file ``mountpoint/parts...`` and its size, or None when it
    cannot be reached on plain directories or is not a regular file (the engine answers then).
    The caller closes the descriptor."""
    if not parts:
        return None
    folder = open_folder(mountpoint, parts[:-1])
    if folder is None:
        return None
    try:
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd, info.st_size


def remove_on_host(mountpoint: Path, parts: list[str], name: str) -> bool:
    """Remove ``name`` from the folder ``mountpoint/parts...``: a directory with everything in
    it, anything else (a symlink too) by itself, never followed. False when the folder cannot
    be reached on plain directories (the engine's way is taken then). The tree is removed
    through descriptors (``shutil.rmtree`` with ``dir_fd``, which never follows a link, even
    one swapped in meanwhile)."""
    folder = open_folder(mountpoint, parts)
    if folder is None:
        return False
    try:
        try:
            kind = stat.S_IFMT(os.lstat(name, dir_fd=folder).st_mode)
        except FileNotFoundError:
            return True
        if kind == stat.S_IFDIR:
            shutil.rmtree(name, dir_fd=folder)
        else:
            os.unlink(name, dir_fd=folder)
        return True
    finally:
        os.close(folder)


class NewFile:
    """A file being written in place into a folder on the volume (an open descriptor from
    ``open_folder``). Its bytes go to an unnamed file in that folder (``O_TMPFILE``), which
    ``commit`` links under ``name`` (replacing a file or a symlink of that name, never a
    directory). Until then it has no name: nothing shows in the folder, and whatever ends the
    upload early (``discard``, or the backend killed) leaves nothing behind, since the
    filesystem frees an unnamed file when its last descriptor closes. Every call is blocking
    disk I/O: run it in a thread."""

    def __init__(self, folder: int, name: str) -> None:
        self._folder = folder
        self.name = name
        self._fd = os.open(".", _NEW_FLAGS, FILE_MODE, dir_fd=folder)
        os.fchmod(self._fd, FILE_MODE)  # whatever the backend's umask
        # A write runs in a thread that outlives a cancelled upload: ``discard`` waits for it,
        # so the descriptor is never closed (and its number reused) under it.
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._fd < 0:
                raise OSError(errno.EBADF, "the upload was discarded")
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def commit(self) -> None:
        """The file under its name: a file or symlink of that name is removed, then the
        unnamed file linked to it. ``IsADirectoryError`` when the name is a directory.

        Linked, not renamed over the old file: ext4 takes a rename that replaces a file as a
        sign that the new one must reach the disk first (``auto_da_alloc``) and starts writing
        it out before the rename returns: 45-590 ms (median 66) for 256 MB here, against 17 ms
        for an unlink and a rename. The name is missing for the moment between the two calls
        (``docker cp`` removes it before its whole copy)."""
        for _ in range(3):  # another writer may take the name between the two calls
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self._folder)
            try:
                os.link(f"/proc/self/fd/{self._fd}", self.name, dst_dir_fd=self._folder)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(self.name)
        self.discard()

    def discard(self) -> None:
        """Close the file: unnamed (not committed), it is gone."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
