"""Every image the project builds, with every role, works as a development machine under runsc.

This host's gVisor rejects ``statx`` with AT_NO_AUTOMOUNT, which broke ``ls -l``, ``stat`` and
``cp -a`` in the Debian image; the images preload a shim (scripts/statx-noautomount.c). Each case
runs a fresh sandbox of one (image, role) through the tools a person reaches for first.
"""

from __future__ import annotations

import docker
import pytest

from tests.conftest import BUSYBOX, Api, sh
from tests.roles.conftest import DEBIAN

# The same list in every sandbox; each line must exit 0 (``set -e``) and print no error.
COMMON = r"""
set -eu
cd /tmp
mkdir -p work/sub && echo hello > work/sub/file && ln -s sub/file work/link
ls -l / >/dev/null
ls -la work | grep -q 'link -> sub/file'
stat work/sub/file | grep -q 'Size: 6'
cp -a work copy && cmp work/sub/file copy/sub/file
find /tmp/copy -name file | grep -q copy/sub/file
tar -cf work.tar work && tar -tf work.tar | grep -q work/sub/file
du -s work >/dev/null
df / >/dev/null
ps | grep -q ps || ps -e | grep -q ps
id -u | grep -qx 0
echo dev-machine-ok
"""

PYTHON = r"""
set -eu
cd /tmp
python3 -m venv venv
venv/bin/pip --version | grep -q '^pip '
"""

GIT = r"""
set -eu
cd /tmp
git init -q repo && cd repo
echo one > a.txt && git add a.txt
git -c user.name=corral -c user.email=corral@example.invalid commit -q -m first
git log --oneline | grep -q first
"""

CASES = [
    (BUSYBOX, "barebone", []),
    (DEBIAN, "barebone", []),
    (
        DEBIAN,
        "standard",
        [GIT, "set -e; curl --version >/dev/null; jq --version; vim --version >/dev/null"],
    ),
    (DEBIAN, "python", [PYTHON, GIT]),
    (DEBIAN, "node", ["set -e; node -e 'console.log(6*7)' | grep -qx 42; npm --version", GIT]),
    (DEBIAN, "go", ["set -e; go version | grep -q 'go1'; make --version >/dev/null", GIT]),
]


@pytest.mark.parametrize(("image", "role", "extra"), CASES, ids=[f"{i}-{r}" for i, r, _ in CASES])
async def test_a_fresh_sandbox_is_a_development_machine(
    api: Api, docker_client: docker.DockerClient, image: str, role: str, extra: list[str]
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, image=image, role=role, memory_mb=1024, cpu_shares=2000)
    assert (made["status"], made["role_state"]) == (
        "running",
        "none" if role == "barebone" else "installed",
    )
    code, out = sh(docker_client, made["id"], COMMON)
    assert (code, out.strip().splitlines()[-1:]) == (0, ["dev-machine-ok"]), out
    assert "Invalid argument" not in out
    for script in extra:
        code, out = sh(docker_client, made["id"], script)
        assert code == 0, (script, out)
