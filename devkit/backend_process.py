"""The backend as its own process (``corral serve``), for crash tests and benchmarks.

Crash tests need to SIGKILL a real server half-way through an operation and start it again on the
same data directory; benchmarks need a server that does not share the measuring client's event
loop and GIL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from devkit.waiting import wait_for_sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BackendProcess:
    """``corral serve`` on a free loopback port over ``data_dir``, as ``instance`` (everything
    it makes on the engine carries that label: ``devkit.engine.clean_up`` removes it); ``env``
    adds to its environment (``DATABASE_URL`` and ``CORRAL_<FIELD>`` settings, for replicas).
    ``log``: its output goes there (appended) instead of this process's; ``detached``: it
    outlives this process (its own session, no stdin), as scripts/cluster.py's replicas do."""

    def __init__(
        self,
        data_dir: Path,
        instance: str,
        env: Mapping[str, str] | None = None,
        *,
        log: Path | None = None,
        detached: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.instance = instance
        self.env = dict(env or {})
        self.log = log
        self.detached = detached
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "instance-id").write_text(instance + "\n")

    def start(self, timeout_s: float = 30.0) -> None:
        self.launch()
        self.wait_until_answering(timeout_s)

    def launch(self) -> None:
        """Start the process without waiting for it to answer (``pid`` is known now)."""
        command = [sys.executable, "-m", "corral.cli", "--data-dir", str(self.data_dir)]
        env = {**os.environ, "CORRAL_LOG": os.environ.get("CORRAL_TEST_LOG", "WARNING"), **self.env}
        output = self.log.open("ab") if self.log is not None else None
        try:
            self._proc = subprocess.Popen(
                [*command, "serve", "--port", str(self.port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                stdin=subprocess.DEVNULL if self.detached else None,
                start_new_session=self.detached,
            )
        finally:
            if output is not None:
                output.close()  # the child has its own copy

    def wait_until_answering(self, timeout_s: float = 30.0) -> None:
        try:
            wait_for_sync(self._answers, timeout_s, what=f"the backend on {self.url} to answer")
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def _answers(self) -> bool:
        assert self._proc is not None
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # 503 still means it answers
        except OSError:
            pass
        if self._proc.poll() is not None:
            raise RuntimeError(f"the backend exited with {self._proc.returncode}")
        return False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
