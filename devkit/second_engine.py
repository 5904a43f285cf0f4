"""A second Docker engine beside the machine's own, for tests that stop, restart or overload an
engine (and, later, for tests that need several engines standing in for several hosts).

The machine's main ``dockerd`` is shared with everyone's tests, so it is never stopped. This one
is a ``dockerd`` of its own: its socket, ``--data-root``, ``--exec-root`` and ``--pidfile`` under
one short folder in /tmp (a unix socket path has a length limit, and containerd keeps its socket
under the exec root), the same ``/etc/docker/daemon.json`` (so runsc is registered as on the
main engine), and no bridge or iptables rules (its sandboxes run with ``--network=none``; the
main engine owns the host's network setup). It starts in well under a second; the images a test
needs are copied into it from the main engine (``docker save | docker load``), once, since its
data root survives its restarts.

``destroy`` leaves nothing behind: the daemon and its containerd stopped, every mount under the
folder undone, the folder removed. The engine uses no loop devices.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from devkit.waiting import wait_for_sync

DEFAULT_IMAGES = ("corral/busybox:latest",)


class EngineDidNotStart(RuntimeError):
    """The second dockerd did not answer before its deadline (its log's tail is in the text)."""


class SecondEngine:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="corral-engine-", dir="/tmp"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log_path = self.root / "dockerd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- running ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start dockerd and wait (with a deadline) until its API answers."""
        if self.running:
            return
        pidfile = self.root / "docker.pid"
        pidfile.unlink(missing_ok=True)  # a stale one (a killed daemon) blocks the start
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    "dockerd",
                    "--host",
                    self.host,
                    "--data-root",
                    str(self.root / "data"),
                    "--exec-root",
                    str(self.root / "x"),
                    "--pidfile",
                    str(pidfile),
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--ip-forward=false",
                    "--userland-proxy=false",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of the tests must not reach it half-way
            )
        proc = self._proc
        with contextlib.suppress(AssertionError):  # said below, with the daemon's log
            wait_for_sync(
                lambda: proc.poll() is not None or self.answers(),
                timeout_s,
                what="the second dockerd",
            )
        if proc.poll() is not None or not self.answers():
            tail = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
            raise EngineDidNotStart(f"the second dockerd did not answer:\n{tail}")

    def answers(self) -> bool:
        """Whether the engine's API answers a ping now."""
        if not self.socket.exists():
            return False
        try:
            client = docker.APIClient(base_url=self.host, version="auto", timeout=2)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        finally:
            client.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop dockerd (SIGTERM: it stops its containers and its containerd) and wait for it;
        past the deadline it is killed, and its containerd with it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._kill_containerd()

    def restart(self, timeout_s: float = 30.0) -> None:
        self.stop(timeout_s)
        self.start(timeout_s)

    def _kill_containerd(self) -> None:
        """The daemon's own containerd, if it outlived the daemon (a killed dockerd)."""
        pidfile = self.root / "x" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            if _command_of(pid).startswith("containerd"):
                os.kill(pid, signal.SIGKILL)

    # -- using it -----------------------------------------------------------------------------

    def client(self) -> docker.DockerClient:
        """A new SDK client of this engine (the caller closes it)."""
        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)

    def load_images(self, names: Iterable[str] = DEFAULT_IMAGES) -> None:
        """Copy images from the main engine (``docker save | docker load``), once each."""
        main = docker.from_env(version="auto")
        mine = self.client()
        try:
            for name in names:
                try:
                    mine.images.get(name)
                    continue
                except docker.errors.ImageNotFound:
                    pass
                data = b"".join(main.images.get(name).save(named=True))
                mine.images.load(data)
        finally:
            main.close()
            mine.close()

    # -- leaving nothing behind ---------------------------------------------------------------

    def destroy(self) -> None:
        """Stop the engine, undo every mount under its folder, remove the folder."""
        self.stop()
        for mount in sorted(_mounts_under(self.root), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == str(root) or point.startswith(prefix):
                found.append(point)
    return found


def _command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
