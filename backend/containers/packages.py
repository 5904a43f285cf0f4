"""The host-side package cache: a role's packages, downloaded once per distribution.

Sandboxes have no network on these hosts, so their packages cannot come from inside. The host
downloads them instead, with the distribution's own package manager, inside the debootstrap root
filesystem that scripts/images.sh built the image from and keeps (``<rootfs_dir>/<distribution>``).
Its package lists are the ones the image was imported with, so apt on the host picks exactly the
versions (and the dependency closure) that apt in a sandbox will ask for.

Layout: ``<package_cache_dir>/<distribution>/<role>/*.deb`` plus a manifest
(``.corral-role.json``) that says which packages the folder holds. The distribution folder is
mounted read-only into every sandbox of a role that installs something; it is never replaced, only
its role folders are, so the mount stays valid while a role is (re)prepared: gVisor revalidates
bind mounts against the host, so a role folder that appears later is seen inside.

Safety:
- Two prepares of the same role (two requests, two backends, the CLI) are serialized by an
  ``flock`` on ``<distribution>/.<role>.lock``; the second finds the work done.
- A prepare downloads into a temporary folder and renames it into place when complete, so a
  sandbox never sees half a role folder.
- The chroot runs in a private mount namespace (``unshare --mount``) with the root filesystem
  bound read-only and its own /proc, /tmp and resolv.conf: concurrent prepares cannot unmount
  each other's /proc, nothing is left mounted if the process dies, and the shared root filesystem
  is never written (apt's binary caches are disabled; the lists are only read).
- It runs in a thread (the event loop never waits on it) with a timeout.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backend.containers.catalog import Role
from backend.containers.locks import KeyedLocks
from backend.errors import sanitize
from backend.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = ".corral-role.json"
# The image label scripts/images.sh records: the fingerprint of the package lists the image was
# imported with (see ``lists_fingerprint``).
LISTS_LABEL = "corral.apt-lists"
DISTRIBUTION_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")

# Runs as root inside a private mount namespace: $1 the root filesystem, $2 the output folder,
# then the package names (validated by the catalog: no options, no shell words).
CHROOT_DOWNLOAD = r"""
set -eu
root=$1; out=$2; shift 2
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs tmpfs "$root/tmp"
if [ -f "$root/etc/resolv.conf" ] && [ -f /etc/resolv.conf ]; then
  mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
fi
mount --bind "$out" "$root/mnt"
exec chroot "$root" apt-get install -y -q --download-only --no-install-recommends \
  -o Dir::Cache::archives=/mnt/ -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
  -o Acquire::Retries=3 -- "$@"
"""


class PrepareFailed(Exception):
    """Downloading a role's packages failed; the message is safe to show a user."""


@dataclass(frozen=True)
class Prepared:
    """A ready role folder: where it is, how many packages it holds, and whether this call
    downloaded them (False: they were already there)."""

    path: Path
    files: int
    size_bytes: int
    downloaded: bool
    seconds: float


class PackageCache:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.packages_dir
        self.rootfs_dir = settings.rootfs_dir
        self.timeout_s = settings.role_prepare_timeout_s
        self._locks = KeyedLocks()

    # -- layout -------------------------------------------------------------------------------

    def distribution_dir(self, distribution: str) -> Path:
        """The folder mounted read-only into sandboxes; made here so a bind never fails."""
        if not DISTRIBUTION_RE.fullmatch(distribution):
            raise ValueError(f"invalid distribution name {distribution!r}")
        path = self.root / distribution
        path.mkdir(parents=True, exist_ok=True)
        return path

    def role_dir(self, distribution: str, role: Role) -> Path:
        return self.distribution_dir(distribution) / role.id

    def rootfs(self, distribution: str) -> Path:
        return self.rootfs_dir / distribution

    def lists_fingerprint(self, distribution: str) -> str | None:
        """SHA-256 over the root filesystem's InRelease files, in name order (as
        scripts/images.sh computes it): which package lists the downloads were chosen from.
        None when the root filesystem has none."""
        lists = self.rootfs(distribution) / "var" / "lib" / "apt" / "lists"
        files = sorted(lists.glob("*InRelease"), key=lambda p: p.name.encode())
        if not files:
            return None
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def is_ready(self, distribution: str, role: Role) -> bool:
        """Whether the role's folder holds its current package list's download, chosen from
        the package lists the root filesystem has now (so from the image's, see
        ``check_image``)."""
        manifest = self.role_dir(distribution, role) / MANIFEST
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(data, dict) or data.get("packages") != sorted(role.packages):
            return False
        recorded = data.get("lists")
        return recorded is None or recorded == self.lists_fingerprint(distribution)

    def check_image(self, distribution: str, labels: dict[str, str]) -> None:
        """Refuse when the image was imported with other package lists than the root
        filesystem has now: apt in the sandbox would ask for versions the cache does not hold.
        Images without the label (imported by an older images.sh) are not checked."""
        recorded = labels.get(LISTS_LABEL)
        if not recorded:
            return
        current = self.lists_fingerprint(distribution)
        if current is not None and current != recorded:
            raise PrepareFailed(
                f"the host's package lists for {distribution} differ from the image's; an "
                "operator must rebuild the image with scripts/images.sh --force"
            )

    # -- preparing ----------------------------------------------------------------------------

    async def prepare(self, distribution: str, role: Role, force: bool = False) -> Prepared:
        """Download the role's packages for ``distribution`` unless they are there already.

        One prepare per role at a time in this process (the others wait, then find it done);
        the file lock inside covers other processes."""
        async with self._locks.hold(f"{distribution}/{role.id}"):
            return await asyncio.to_thread(self.prepare_blocking, distribution, role, force)

    def prepare_blocking(self, distribution: str, role: Role, force: bool = False) -> Prepared:
        started = time.monotonic()
        final = self.role_dir(distribution, role)
        with self._file_lock(distribution, role):
            if not force and self.is_ready(distribution, role):
                return self._describe(final, downloaded=False, started=started)
            if not role.packages:
                self._publish(self._fresh_dir(distribution, role), final, role, distribution)
                return self._describe(final, downloaded=True, started=started)
            self._check_host(distribution)
            work = self._fresh_dir(distribution, role)
            try:
                (work / "partial").mkdir()
                self._download(distribution, work, role)
                shutil.rmtree(work / "partial", ignore_errors=True)
                (work / "lock").unlink(missing_ok=True)
                self._publish(work, final, role, distribution)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        result = self._describe(final, downloaded=True, started=started)
        log.info(
            "prepared role %s for %s: %d packages, %.1f MB in %.1f s",
            role.id,
            distribution,
            result.files,
            result.size_bytes / 1e6,
            result.seconds,
        )
        return result

    @contextmanager
    def _file_lock(self, distribution: str, role: Role) -> Iterator[None]:
        path = self.distribution_dir(distribution) / f".{role.id}.lock"
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _fresh_dir(self, distribution: str, role: Role) -> Path:
        path = self.distribution_dir(distribution) / f".{role.id}.tmp-{secrets.token_hex(4)}"
        path.mkdir(mode=0o755)
        return path

    def _check_host(self, distribution: str) -> None:
        if os.geteuid() != 0:
            raise PrepareFailed(
                "preparing role packages needs the backend to run as root (it uses a chroot)"
            )
        root = self.rootfs(distribution)
        if not (root / "usr" / "bin" / "apt-get").is_file() or not (root / "mnt").is_dir():
            log.error("no usable root filesystem for %s at %s", distribution, root)
            raise PrepareFailed(
                f"the host has no root filesystem for {distribution} to download packages with; "
                "an operator can build it with scripts/images.sh --force"
            )
        if shutil.which("unshare") is None or shutil.which("chroot") is None:
            raise PrepareFailed("the host lacks unshare or chroot (util-linux, coreutils)")

    def _download(self, distribution: str, work: Path, role: Role) -> None:
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            CHROOT_DOWNLOAD,
            "corral-prepare",
            str(self.rootfs(distribution)),
            str(work),
            *role.packages,
        ]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "LANG": "C"}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PrepareFailed(
                f"downloading the packages of role {role.id} took longer than "
                f"{self.timeout_s:.0f} s"
            ) from exc
        if done.returncode != 0:
            log.warning(
                "apt-get --download-only for role %s failed (%d): %s",
                role.id,
                done.returncode,
                (done.stderr or done.stdout)[-2000:],
            )
            raise PrepareFailed(apt_failure(done.stdout + "\n" + done.stderr, role))

    def _publish(self, work: Path, final: Path, role: Role, distribution: str) -> None:
        files = sorted(p.name for p in work.glob("*.deb"))
        manifest = {
            "role": role.id,
            "distribution": distribution,
            "packages": sorted(role.packages),
            "lists": self.lists_fingerprint(distribution),
            "files": files,
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        for path in (work, *work.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        old: Path | None = None
        if final.exists():
            old = final.with_name(f".{role.id}.old-{secrets.token_hex(4)}")
            final.rename(old)
        work.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _describe(self, path: Path, downloaded: bool, started: float) -> Prepared:
        debs = list(path.glob("*.deb"))
        return Prepared(
            path=path,
            files=len(debs),
            size_bytes=sum(p.stat().st_size for p in debs),
            downloaded=downloaded,
            seconds=time.monotonic() - started,
        )


def apt_failure(output: str, role: Role) -> str:
    """One sentence from apt's output: its ``E:`` lines, without host paths."""
    errors = [line[2:].strip() for line in output.splitlines() if line.startswith("E:")]
    detail = "; ".join(dict.fromkeys(errors)) or "apt-get failed"
    return sanitize(f"downloading the packages of role {role.id} failed: {detail}")
