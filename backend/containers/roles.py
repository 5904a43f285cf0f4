"""Installing a container's role in the background, after its sandbox starts.

A role's packages live in the sandbox's root filesystem, which every new Docker container starts
without, so each one installs them again: after a create, after every rebuild (new limits), and
after the automatic recreation of a container Docker lost. The container is usable the whole
time (status ``configuring``; a terminal works) and becomes ``running`` when the install ends.

How an install runs:
1. On the host, the role's packages are downloaded once per distribution into the package cache
   (``backend.containers.packages``), unless they are there already.
2. In the sandbox, a script (``INSTALL_SCRIPT``) links the cached .deb files from the read-only
   mount into a writable archives folder and runs ``apt-get install --no-download`` with
   ``APT::Status-Fd``: its ``pmstatus`` lines name the package being worked on and a percentage,
   which become ``container_progress`` events. Where the sandbox has a network (a default route)
   and the cache lacks something, the script falls back to ``apt-get update`` and a normal
   install from the distribution's mirrors.
3. It runs as root with HOME=/root in /, never in /home/user (the user's volume), and logs to
   /var/log/corral-role.log inside the sandbox.

Concurrency: an install never holds the container's lock while it runs; it takes the lock only to
write its state, and each write first checks that the row still names the same Docker container
and still expects this install ("pending"/"installing"). A stop or a delete cancels the task; a
rebuild schedules a new one for the new container, which replaces the old task. A stop during an
install leaves ``role_state`` "pending", and the next start resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backend.containers.catalog import Role
from backend.containers.packages import PackageCache, PrepareFailed
from backend.containers.sandbox import PACKAGES_MOUNT
from backend.db.models import Container
from backend.docker_service import ContainerState, read_exec_output
from backend.errors import DockerError, DockerUnavailable, UnsupportedImage, sanitize

if TYPE_CHECKING:
    from backend.containers.service import ContainerService

log = logging.getLogger(__name__)

ACTIVE_STATES = ("pending", "installing")
ARCHIVES = "/var/cache/corral/archives"
LOG_FILE = "/var/log/corral-role.log"

# $1: the role's folder name in the cache; then the packages (validated by the catalog). fd 3
# carries apt's machine-readable status to the exec's output; apt's own chatter goes to the log.
INSTALL_SCRIPT = rf"""
set -u
role=$1; shift
src={PACKAGES_MOUNT}/$role
work={ARCHIVES}
logf={LOG_FILE}
export DEBIAN_FRONTEND=noninteractive HOME=/root LC_ALL=C.UTF-8
cd /
: >"$logf"
say() {{ printf 'corral:%s\n' "$*"; }}
network_up() {{
  awk 'NR > 1 && $2 == "00000000" {{ found = 1 }} END {{ exit !found }}' /proc/net/route \
    2>/dev/null
}}
rm -rf "$work"
mkdir -p "$work/partial"
count=0
if [ -d "$src" ]; then
  for f in "$src"/*.deb; do
    [ -e "$f" ] || continue
    ln -s "$f" "$work/" && count=$((count + 1))
  done
fi
say "cached $count"
dpkg --configure -a >>"$logf" 2>&1 || true
opts="-y -q --no-install-recommends -o Dir::Cache::archives=$work/ -o APT::Status-Fd=3
  -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
say "stage offline"
apt-get install $opts --no-download -- "$@" 3>&1 >>"$logf" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && network_up; then
  say "stage mirror"
  apt-get update -q >>"$logf" 2>&1 && apt-get install $opts -- "$@" 3>&1 >>"$logf" 2>&1
  rc=$?
fi
rm -rf "$work"
if [ "$rc" -ne 0 ]; then
  grep '^E:' "$logf" | tail -n 3 | sed 's/^/corral:error /'
fi
exit "$rc"
"""

STATUS_RE = re.compile(r"^(pmstatus|dlstatus|pmerror):(.+?):(\d+(?:\.\d+)?):(.*)$")


@dataclass
class InstallProgress:
    """What apt reported last: parsed from ``APT::Status-Fd`` lines and the script's own."""

    package: str | None = None
    percent: float = 0.0
    action: str = ""
    mirror: bool = False
    errors: list[str] | None = None

    def feed(self, line: str) -> bool:
        """Take one line; True when it moved the progress (a package or a percentage)."""
        if line.startswith("corral:"):
            word = line[len("corral:") :]
            if word == "stage mirror":
                self.mirror = True
                self.percent = 0.0
            elif word.startswith("error "):
                self.errors = [*(self.errors or []), word[len("error ") :].removeprefix("E: ")]
            return False
        match = STATUS_RE.match(line)
        if match is None:
            return False
        kind, package, percent, text = match.groups()
        if kind == "pmerror":
            self.errors = [*(self.errors or []), f"{package}: {text}"]
            return False
        value = float(percent)
        if self.mirror:  # downloading is the first 30 %, installing the rest
            value = value * 0.3 if kind == "dlstatus" else 30 + value * 0.7
        if kind == "pmstatus":
            self.package = package.split(":", 1)[0]
            if self.package == "dpkg-exec":
                self.package = None
        self.action = text.strip()
        self.percent = max(self.percent, min(value, 99.0))
        return True


@dataclass
class _Install:
    docker_id: str
    reason: str
    task: asyncio.Task[None]


class RoleInstaller:
    """The background installs of every container: at most one per container, and at most
    ``settings.role_installs`` at once (each is CPU-heavy under gVisor)."""

    def __init__(self, service: ContainerService, cache: PackageCache) -> None:
        self._service = service
        self._cache = cache
        self._settings = service.settings
        self._tasks: dict[str, _Install] = {}
        self._slots = asyncio.Semaphore(max(1, self._settings.role_installs))
        self.progress_interval_s = 1.0

    # -- what the container service asks ------------------------------------------------------

    def wants_install(self, row: Container) -> bool:
        """Whether a new sandbox of ``row`` needs an install. A role that is no longer in the
        catalog still does: the install then fails and says so, rather than the tools
        vanishing without a word."""
        role = self._service.catalog.find_role(row.role)
        return role is None or role.installs

    def start_values(self, row: Container, new_sandbox: bool) -> dict[str, Any]:
        """The row values for a sandbox that has just started. A new sandbox installs the role
        afresh; a restarted one resumes an install that a stop interrupted."""
        if new_sandbox:
            if self.wants_install(row):
                return {"status": "configuring", "role_state": "pending", "role_error": None}
            return {"status": "running", "role_state": "none", "role_error": None}
        if row.role_state in ACTIVE_STATES:
            return {"status": "configuring", "role_state": "pending"}
        return {"status": "running"}

    def stop_values(self, row: Container, state: ContainerState | None = None) -> dict[str, Any]:
        """Cancel the row's install, if any; the row values for its sandbox having stopped.
        An install cut short is due again at the next start, unless the sandbox ran out of
        memory doing it (then it would only fail the same way: it is marked failed)."""
        self.cancel(row.id)
        return _stopped_values(row, state)

    def schedule(self, row: Container, reason: str) -> None:
        """Install the row's role in its current sandbox, replacing any install in progress."""
        assert row.docker_id is not None
        self.cancel(row.id)
        task = asyncio.ensure_future(self._run(row.id, row.docker_id, reason))
        self._tasks[row.id] = _Install(row.docker_id, reason, task)

    def cancel(self, db_id: str) -> None:
        """Cancel the row's install task (never the calling task itself: an install that
        schedules its own successor just ends)."""
        current = self._tasks.pop(db_id, None)
        if current is not None and current.task is not asyncio.current_task():
            current.task.cancel()

    def active(self, db_id: str, docker_id: str | None = None) -> bool:
        current = self._tasks.get(db_id)
        if current is None or current.task.done():
            return False
        return docker_id is None or current.docker_id == docker_id

    async def close(self) -> None:
        """At shutdown: stop waiting for installs (an apt already running in a sandbox goes on
        by itself; the next start of the backend resumes or finishes the bookkeeping)."""
        tasks = [install.task for install in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the task -------------------------------------------------------------------------------

    async def _run(self, db_id: str, docker_id: str, reason: str) -> None:
        try:
            if self._slots.locked():
                row = await self._current(db_id, docker_id)
                if row is None:
                    return
                await self._service._progress(
                    row,
                    "role_queued",
                    "waiting for another role install to finish",
                    0,
                    role=row.role,
                )
            async with self._slots:
                await self._install(db_id, docker_id, reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("installing the role of %s failed unexpectedly", db_id)
            try:
                await self._finish(
                    db_id, docker_id, reason, sanitize(f"the install failed unexpectedly: {exc}")
                )
            except Exception:
                log.exception("recording the failed role install of %s failed", db_id)
        finally:
            current = self._tasks.get(db_id)
            if current is not None and current.task is asyncio.current_task():
                del self._tasks[db_id]

    async def _current(self, db_id: str, docker_id: str) -> Container | None:
        """The row, if it still expects this install in this sandbox."""
        async with self._service.sessions() as session:
            row = await session.get(Container, db_id)
        if row is None or row.docker_id != docker_id or row.role_state not in ACTIVE_STATES:
            return None
        return row

    async def _install(self, db_id: str, docker_id: str, reason: str) -> None:
        service = self._service
        row = await self._current(db_id, docker_id)
        if row is None:
            return
        role = service.catalog.find_role(row.role)
        if role is None:
            await self._finish(
                db_id, docker_id, reason, f"role {row.role!r} is no longer offered on this host"
            )
            return
        try:
            image = service.catalog.image(row.image)
        except UnsupportedImage:
            await self._finish(
                db_id, docker_id, reason, f"image {row.image!r} is no longer offered on this host"
            )
            return
        if not image.distribution:
            await self._finish(
                db_id, docker_id, reason, f"image {image.name!r} has no known distribution"
            )
            return
        try:
            details = await service.docker.image_details(image.reference)
            labels = ((details or {}).get("Config") or {}).get("Labels") or {}
            self._cache.check_image(image.distribution, labels)
        except PrepareFailed as exc:
            await self._finish(db_id, docker_id, reason, str(exc))
            return
        if not self._cache.is_ready(image.distribution, role):
            await service._progress(
                row,
                "role_download",
                f"downloading the packages of role {role.id} on the host",
                0,
                role=role.id,
            )
            try:
                await self._cache.prepare(image.distribution, role)
            except PrepareFailed as exc:
                if not self._sandbox_has_network(row):
                    await self._finish(db_id, docker_id, reason, str(exc))
                    return
                log.warning("%s; the sandbox will try its distribution's mirrors", exc)

        async with service.locks.hold(db_id):
            row = await self._current(db_id, docker_id)
            if row is None:
                return
            state = await service.docker.inspect(docker_id)
            row = await service.save(row, "container_updated", role_state="installing")

        error = await self._exec(row, role, docker_id)
        await self._finish(db_id, docker_id, reason, error, state.started_at if state else None)

    def _sandbox_has_network(self, row: Container) -> bool:
        return row.runtime != "runsc" or self._settings.sandbox_network != "none"

    async def _exec(self, row: Container, role: Role, docker_id: str) -> str | None:
        """Run the install script in the sandbox, reporting progress; None on success, else
        the reason it failed."""
        docker = self._service.docker
        environment = {"DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
        command = ["/bin/sh", "-c", INSTALL_SCRIPT, "corral-role", role.id, *role.packages]
        progress = InstallProgress()
        await self._service._progress(
            row, "role_install", f"installing role {role.id}", 0, role=role.id
        )
        try:
            exec_id, sock = await docker.exec_stream(docker_id, command, environment, "/", "root")
        except (DockerError, DockerUnavailable) as exc:
            return f"the install could not be started in the sandbox: {exc}"

        async def still_running() -> bool:
            try:
                running, _ = await docker.exec_state(exec_id)
                state = await docker.inspect(docker_id)
            except (DockerError, DockerUnavailable):
                return False
            return running and state is not None and state.running

        last_sent = 0.0
        last_key: tuple[str | None, int] = (None, -1)
        pending = b""
        try:
            async with asyncio.timeout(self._settings.role_install_timeout_s):
                async for chunk in read_exec_output(sock, 10.0, still_running):
                    pending += chunk
                    *lines, rest = pending.split(b"\n")
                    pending = rest
                    moved = False
                    for raw in lines:
                        moved |= progress.feed(raw.decode(errors="replace").rstrip("\r"))
                    key = (progress.package, int(progress.percent))
                    now = time.monotonic()
                    if moved and key != last_key and now - last_sent >= self.progress_interval_s:
                        last_sent, last_key = now, key
                        await self._report(row, role, progress)
        except TimeoutError:
            return (
                f"the install took longer than {self._settings.role_install_timeout_s:.0f} s "
                "and was abandoned"
            )
        finally:
            sock.close()
        if pending:
            progress.feed(pending.decode(errors="replace").rstrip("\r"))
        code = await self._exit_code(exec_id)
        if code == 0:
            return None
        detail = "; ".join(dict.fromkeys(progress.errors or [])) or (
            f"apt-get exited with code {code}" if code is not None else "the install was cut off"
        )
        return sanitize(f"installing the packages of role {role.id} failed: {detail}")

    async def _report(self, row: Container, role: Role, progress: InstallProgress) -> None:
        what = f"installing {progress.package}" if progress.package else progress.action
        await self._service._progress(
            row,
            "role_install",
            f"{what} ({int(progress.percent)}%)" if what else f"installing role {role.id}",
            int(progress.percent),
            role=role.id,
            package=progress.package,
        )

    async def _exit_code(self, exec_id: str) -> int | None:
        """The exec's exit code once Docker has recorded it (it may lag the stream's end)."""
        for _ in range(50):
            try:
                running, code = await self._service.docker.exec_state(exec_id)
            except (DockerError, DockerUnavailable):
                return None
            if not running:
                return code
            await asyncio.sleep(0.1)  # Docker records the exit just after the stream closes
        return None

    async def _finish(
        self,
        db_id: str,
        docker_id: str,
        reason: str,
        error: str | None,
        started_at: str | None = None,
    ) -> None:
        """Write the outcome, if the row still expects this install. ``started_at``: when the
        sandbox had started as the install began; a sandbox started since (a rebuild that
        failed and restarted the old container) cut the install off, which is no failure of
        the role: it is installed again."""
        service = self._service
        async with service.locks.hold(db_id):
            row = await self._current(db_id, docker_id)
            if row is None:
                return
            if error is None:
                message = (
                    "role packages restored" if reason == "recreate" else "role packages installed"
                )
                status = "running" if row.status == "configuring" else row.status
                row = await service.save(
                    row,
                    "container_updated",
                    message=message,
                    status=status,
                    role_state="installed",
                    role_error=None,
                )
                await service._progress(
                    row, "role_done", message, 100, complete=True, role=row.role
                )
                return
            state = await service.docker.inspect(docker_id)
            if state is None or not state.running:
                # The sandbox stopped under the install: the watcher reports the stop; the
                # install is due again at the next start (or failed, if memory ran out).
                values = _stopped_values(row, state)
                if values:
                    await service.save(row, "container_updated", **values)
                return
            if started_at is not None and state.started_at != started_at:
                row = await service.save(row, "container_updated", role_state="pending")
                self.schedule(row, reason)
                return
            log.warning("role install of %s failed: %s", db_id, error)
            status = "running" if row.status == "configuring" else row.status
            row = await service.save(
                row,
                "container_updated",
                message="role packages failed to install",
                status=status,
                role_state="failed",
                role_error=error[:1024],
            )
            await service._progress(
                row,
                "role_failed",
                f"installing role {row.role} failed: {error}",
                100,
                complete=True,
                role=row.role,
                error=error,
            )


def _stopped_values(row: Container, state: ContainerState | None) -> dict[str, Any]:
    if row.role_state not in ACTIVE_STATES:
        return {}
    if state is not None and state.oom_killed:
        return {"role_state": "failed", "role_error": OOM_REASON}
    return {"role_state": "pending"}


OOM_REASON = (
    "the sandbox ran out of memory while installing the role's packages; give it more memory "
    "(settings), then reinstall the role"
)
