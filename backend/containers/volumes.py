"""Each sandbox's volume: the user's data, which outlives every container built on it.

With disk quotas (the default when the backend runs as root with e2fsprogs), a volume is an ext4
image file of ``disk_mb`` in the data directory, loop-mounted at a fixed path beside it, and Docker
sees it as a named volume bound to that path. A write past the size fails inside the sandbox with
"No space left on device", and ``df /home/user`` shows the quota. Loop devices do not survive a
reboot and their numbers change, so nothing refers to ``/dev/loopN``: the backend mounts every
image again at the same path when it starts.

Without quotas (not root, or ``disk_quotas = "none"``), a volume is a plain named Docker volume.

Every volume a sandbox mounts is made here, labelled, never by the engine (which makes an empty,
unlabelled one when a container names a missing volume). A volume of a row's name that Corral did
not make is refused (``VolumeGone``). A row whose volume is gone (removed by hand, or a database
brought to a new host) gets a new, empty one only when it is rebuilt, and the rebuild says so
(``had_volume``: the data was lost, not a first volume).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from backend.containers.sandbox import LABEL_DB_ID, instance_labels
from backend.db.models import VOLUME_PREFIX, Container, volume_name
from backend.docker_service import DockerService
from backend.errors import DockerError, VolumeGone

log = logging.getLogger(__name__)

MB = 1024 * 1024
T = TypeVar("T")
QUOTA_TOOLS = ("mkfs.ext4", "resize2fs", "e2fsck", "mount", "umount", "losetup")


class VolumeError(DockerError):
    """A host-side volume step (mkfs, mount, resize) failed."""


@dataclass(frozen=True)
class Usage:
    used_mb: int  # data in the filesystem
    size_mb: int  # what the filesystem offers (df's size)
    image_mb: int  # the image file: the quota

    @property
    def minimum_mb(self) -> int:
        """The smallest quota that holds this data. ext4 keeps part of the image for its
        metadata and journal (the share seen on this filesystem), plus some slack so that
        resize2fs can move blocks."""
        overhead = max(0.0, 1 - self.size_mb / self.image_mb) if self.image_mb else 0.1
        return math.ceil((self.used_mb + 4) / max(0.5, 1 - overhead - 0.05))


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    # e2fsck exits 1 when it repaired something: that is success here.
    if result.returncode != 0 and not (argv[0] == "e2fsck" and result.returncode == 1):
        log.warning("%s failed (%s): %s", argv[0], result.returncode, result.stderr.strip())
        raise VolumeError(f"{argv[0]} failed with exit code {result.returncode}")
    return result.stdout.strip()


def _detached(image: Path, timeout_s: float = 3.0) -> bool:
    """Whether no loop device holds ``image``, waiting a little: the kernel may release an
    autoclear loop device a moment after the unmount returns (seen under load)."""
    deadline = time.monotonic() + timeout_s
    while _run("losetup", "-j", str(image)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling the kernel's state, on a worker thread
    return True


class Ext4Images:
    """Blocking host-side work on the image files; the async manager runs it in threads.

    A volume's files are named by its key (``volume_key``): ``<key>.img`` and the folder
    ``<key>/`` it is mounted at."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def image(self, key: str) -> Path:
        return self.root / f"{key}.img"

    def locked(self, work: Callable[..., T], key: str, *args: Any) -> T:
        """``work(key, *args)`` holding the volume's host-wide lock (flock), so replicas sharing
        this folder never mount, resize or remove one volume at the same time (a replica's
        start mounts every volume while another may be resizing one)."""
        folder = self.root / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{key}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                return work(key, *args)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def mountpoint(self, key: str) -> Path:
        return self.root / key

    def ensure(self, key: str, disk_mb: int) -> bool:
        """Make and mount the image if needed (growing an existing one smaller than
        ``disk_mb``: a kept volume attached with a larger disk); True when it already existed."""
        image, mountpoint = self.image(key), self.mountpoint(key)
        existed = image.exists()
        if existed and image.stat().st_size < disk_mb * MB:
            self.resize(key, disk_mb)
        if not existed:
            self.root.mkdir(parents=True, exist_ok=True)
            partial = image.with_suffix(".partial")
            with partial.open("wb") as handle:
                handle.truncate(disk_mb * MB)
            _run("mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0", "-L", "corral", str(partial))
            partial.rename(image)
        self.mount(key)
        if not existed:
            lost = mountpoint / "lost+found"
            if lost.is_dir() and not any(lost.iterdir()):
                lost.rmdir()
        return existed

    def mount(self, key: str) -> bool:
        """Mount the image at its path if it is not; True when it was mounted now."""
        mountpoint = self.mountpoint(key)
        mountpoint.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(mountpoint):
            return False
        _run("mount", "-o", "loop,noatime", str(self.image(key)), str(mountpoint))
        return True

    def remove(self, key: str) -> None:
        mountpoint = self.mountpoint(key)
        if os.path.ismount(mountpoint):
            _run("umount", str(mountpoint))
        if mountpoint.is_dir():
            mountpoint.rmdir()
        self.image(key).unlink(missing_ok=True)

    def usage(self, key: str) -> Usage | None:
        mountpoint = self.mountpoint(key)
        if not os.path.ismount(mountpoint):
            return None
        stats = os.statvfs(mountpoint)
        used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
        return Usage(
            used_mb=-(-used // MB),
            size_mb=stats.f_blocks * stats.f_frsize // MB,
            image_mb=self.image(key).stat().st_size // MB,
        )

    def used_mb(self, key: str) -> int | None:
        """The data in the volume (as ``df`` counts it), mounted or not; None when it cannot be
        told. Volumes are mounted (kept ones too, so their Docker volume shows the data); one
        that could not be is read with ``dumpe2fs -h``, whose counts are exact after a clean
        unmount, leaving ext4's own overhead out as ``df`` does."""
        usage = self.usage(key)
        if usage is not None:
            return usage.used_mb
        image = self.image(key)
        if not image.exists() or shutil.which("dumpe2fs") is None:
            return None
        result = subprocess.run(
            ["dumpe2fs", "-h", str(image)], capture_output=True, text=True, check=False
        )
        fields = {
            k.strip(): v.strip()
            for k, _, v in (line.partition(":") for line in result.stdout.splitlines())
        }
        try:
            blocks = int(fields["Block count"]) - int(fields["Free blocks"])
            used = (blocks - int(fields["Overhead clusters"])) * int(fields["Block size"])
        except (KeyError, ValueError):
            return None
        return -(-max(0, used) // MB)

    def free_bytes(self, key: str) -> int | None:
        """What the mounted volume can still take (bytes; None when it is not mounted)."""
        mountpoint = self.mountpoint(key)
        if not os.path.ismount(mountpoint):
            return None
        stat = os.statvfs(mountpoint)
        return stat.f_bavail * stat.f_frsize

    def size_mb(self, key: str) -> int | None:
        image = self.image(key)
        return image.stat().st_size // MB if image.exists() else None

    def resize(self, key: str, disk_mb: int) -> None:
        """Grow or shrink to ``disk_mb``, keeping the data. The kernel here refuses online
        resizing, so the image is unmounted, checked, resized and mounted again: nothing may be
        running on the volume."""
        image, mountpoint = self.image(key), self.mountpoint(key)
        if os.path.ismount(mountpoint):
            _run("umount", str(mountpoint))
        try:
            if not _detached(image):
                raise VolumeError("the volume is still in use by a running container")
            _run("e2fsck", "-f", "-p", str(image))
            growing = disk_mb * MB > image.stat().st_size
            if growing:
                with image.open("r+b") as handle:
                    handle.truncate(disk_mb * MB)
            _run("resize2fs", str(image), f"{disk_mb}M")
            if not growing:
                with image.open("r+b") as handle:
                    handle.truncate(disk_mb * MB)
        finally:
            self.mount(key)


class VolumeManager:
    """Named Docker volumes, one per container row (named from its database ID, or a kept
    volume attached at create), each backed by an ext4 image when quotas are on."""

    def __init__(self, docker: DockerService, instance: str, root: Path | None) -> None:
        self._docker = docker
        self._instance = instance
        self._images = Ext4Images(root) if root is not None else None

    @property
    def quota_enforced(self) -> bool:
        return self._images is not None

    @staticmethod
    def quotas_possible() -> bool:
        """Quotas need root (to mount) and e2fsprogs; checked for real, not assumed."""
        return os.geteuid() == 0 and all(shutil.which(tool) for tool in QUOTA_TOOLS)

    async def ensure(self, row: Container) -> bool:
        """Make sure the row's volume exists, is Corral's and is mounted; True when its data
        already existed. ``VolumeGone`` when a volume of its name exists that Corral did not
        make (left alone: it is not ours to remove or to mount)."""
        name = row.volume_name
        labels = await self._docker.volume_labels(name)
        if labels is not None and any(
            labels.get(key) != value for key, value in instance_labels(self._instance).items()
        ):
            raise VolumeGone(
                f"a volume named {name} exists but was not made by Corral (it lacks its labels); "
                "remove it on the host (docker volume rm) if it holds nothing, then try again"
            )
        if self._images is None:
            if labels is not None:
                return True
            await self._create_docker_volume(row)
            return False
        existed = await asyncio.to_thread(
            self._images.locked, self._images.ensure, volume_key(name), row.disk_mb
        )
        if labels is None:  # the engine's record only; the image holds the data
            await self._create_docker_volume(row)
        return existed

    async def _create_docker_volume(self, row: Container) -> None:
        labels = {**instance_labels(self._instance), LABEL_DB_ID: row.id}
        options = None
        if self._images is not None:
            device = str(self._images.mountpoint(volume_key(row.volume_name)))
            options = {"type": "none", "o": "bind", "device": device}
        await self._docker.create_volume(row.volume_name, labels, options)

    async def remove(self, row: Container) -> None:
        await self.remove_named(row.volume_name)

    async def remove_named(self, name: str) -> None:
        """Remove a volume: the Docker volume, then its image (unmounted first)."""
        await self._docker.remove_volume(name)
        if self._images is not None:
            await asyncio.to_thread(self._images.locked, self._images.remove, volume_key(name))

    async def exists(self, row: Container) -> bool:
        """Whether the row's volume holds anything to keep."""
        if self._images is not None:
            image = self._images.image(volume_key(row.volume_name))
            if await asyncio.to_thread(image.exists):
                return True
        return await self._docker.volume_exists(row.volume_name)

    async def used_mb(self, name: str) -> int | None:
        """The data a volume holds (MB), or None when unknown (no quotas: plain volumes)."""
        if self._images is None:
            return None
        return await asyncio.to_thread(self._images.used_mb, volume_key(name))

    async def remount_all(self, names: list[str]) -> int:
        """Mount every existing image again at its path (after a reboot); how many were."""
        if self._images is None:
            return 0
        mounted = 0
        for name in names:
            key = volume_key(name)
            if not await asyncio.to_thread(self._images.image(key).exists):
                continue
            try:
                mounted += await asyncio.to_thread(self._images.locked, self._images.mount, key)
            except VolumeError:
                log.exception("could not mount the volume %s", name)
        return mounted

    async def usage(self, row: Container) -> Usage | None:
        if self._images is None:
            return None
        return await asyncio.to_thread(self._images.usage, volume_key(row.volume_name))

    async def free_bytes(self, row: Container) -> int | None:
        """What the row's volume can still take (bytes), or None when unknown (no quotas)."""
        if self._images is None:
            return None
        return await asyncio.to_thread(self._images.free_bytes, volume_key(row.volume_name))

    async def host_path(self, row: Container) -> Path | None:
        """Where the row's volume is mounted on this host (quotas on, and mounted), for reads
        in place (``backend.files.host_files``); None otherwise."""
        if self._images is None:
            return None
        mountpoint = self._images.mountpoint(volume_key(row.volume_name))
        return mountpoint if await asyncio.to_thread(os.path.ismount, mountpoint) else None

    async def size_mb(self, row: Container) -> int | None:
        if self._images is None:
            return None
        return await asyncio.to_thread(self._images.size_mb, volume_key(row.volume_name))

    async def resize(self, row: Container, disk_mb: int) -> None:
        if self._images is None:
            return
        key = volume_key(row.volume_name)
        if await self.size_mb(row) is None:
            return  # no image yet (or it is gone): it is made at the row's size when needed
        await asyncio.to_thread(self._images.locked, self._images.resize, key, disk_mb)


def had_volume(row: Container) -> bool:
    """Whether the row's volume has existed, so that its absence means lost data: the row had
    a sandbox (which mounted it), or it was created on a kept volume."""
    return row.docker_id is not None or row.volume_name != volume_name(row.id)


def lost_message(name: str) -> str:
    return (
        f"its volume {name} was gone (removed outside Corral, or the database was brought to "
        "another host): it was recreated on a new, empty volume, and /home/user starts empty"
    )


def volume_key(name: str) -> str:
    """The name of a volume's files in the data directory: the volume's name without its
    prefix (the database ID of the container it was made for)."""
    return name.removeprefix(VOLUME_PREFIX)
