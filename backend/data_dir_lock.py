"""One backend per data directory: an exclusive lock, and the address of whoever holds it.

Two backends on one data directory would both number events (``UNIQUE events.user_id,
events.seq`` fails) and each would announce only its own changes. So whoever serves a data
directory (``corral serve``, the console's embedded backend, a command's in-process one) holds an
``flock`` on ``backend.lock`` in it, and once it listens writes ``backend.json`` (``{"url",
"pid"}``) beside it. A second process finds the lock taken and reads the address, to talk to the
first instead of starting its own, or to refuse naming it.

Why ``flock``: the kernel drops it when the holding process dies, however it dies, so a crash
never leaves a stale lock to clean up by hand. ``backend.json`` can outlive a crash; it is
believed only while its ``pid`` is the one the current holder wrote into the lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "backend.lock"
ADDRESS_NAME = "backend.json"


@dataclass(frozen=True)
class BackendAddress:
    """Where the backend serving a data directory listens, and its process."""

    url: str
    pid: int


class DataDirBusy(Exception):
    """Another process serves this data directory (``address`` is None while it starts)."""

    def __init__(self, data_dir: Path, pid: int | None, address: BackendAddress | None) -> None:
        self.data_dir = data_dir
        self.pid = pid
        self.address = address
        who = f"process {pid}" if pid else "another process"
        where = f"at {address.url}" if address else "(still starting)"
        super().__init__(f"{data_dir} is already served by {who} {where}")


class DataDirLock:
    """The exclusive right to serve one data directory, for as long as this object holds it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, patience_s: float = 0.25) -> None:
        """Take the lock, or raise ``DataDirBusy`` naming the holder. ``is_served`` takes the
        lock for an instant to test it, so a taken lock is tried again for ``patience_s``
        before it counts as held."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + patience_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                os.close(fd)
                pid = holder_pid(self.data_dir)
                raise DataDirBusy(self.data_dir, pid, published_address(self.data_dir)) from None
        # A crashed holder's address is never to be believed again; then say who holds it now.
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / ADDRESS_NAME).unlink()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def publish(self, url: str) -> None:
        """Say where this backend listens (written whole: readers never see half of it)."""
        if self._fd is None:
            raise RuntimeError("publish() needs the lock")
        path = self.data_dir / ADDRESS_NAME
        temporary = path.with_name(f".{ADDRESS_NAME}.{os.getpid()}")
        temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        os.replace(temporary, path)

    def release(self) -> None:
        """Withdraw the address, then let go of the lock (in that order: an address is never
        left behind for a next holder's readers to trust)."""
        if self._fd is None:
            return
        address = _read_address(self.data_dir)
        if address is not None and address.pid == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / ADDRESS_NAME).unlink()
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the only descriptor releases the flock


def holder_pid(data_dir: Path) -> int | None:
    """The PID the lock's holder wrote, if it has yet."""
    try:
        text = (data_dir / LOCK_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def is_served(data_dir: Path) -> bool:
    """Whether some process holds the lock (tested by trying it, without keeping it)."""
    try:
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def published_address(data_dir: Path) -> BackendAddress | None:
    """The address of the backend that serves ``data_dir`` now: None when nothing serves it,
    or while its holder has not published yet (it is starting)."""
    if not is_served(data_dir):
        return None
    address = _read_address(data_dir)
    if address is None or address.pid != holder_pid(data_dir) or not _alive(address.pid):
        return None
    return address


def _read_address(data_dir: Path) -> BackendAddress | None:
    try:
        raw = json.loads((data_dir / ADDRESS_NAME).read_text())
        return BackendAddress(url=str(raw["url"]), pid=int(raw["pid"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
