"""Create to role installed: the python role (python3, pip, venv, git) on corral/debian:bookworm,
once with the host's package cache empty (cold: the host downloads the packages, then the
sandbox installs them) and once with it ready (warm: the install alone), in one backend.

Also reported: when each container was usable (status configuring, a terminal works), and how
much of the cold run was the host-side download. Polls GET every 0.25 s, so times are +-0.25 s.
The sandboxes get 1024 MB and two CPUs, so the install is not throttled by its own limits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from benchmarks.common import running_backend

IMAGE = "corral/debian:bookworm"
ROLE = "python"
TIMEOUT_S = 1200.0


async def _one(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    body = {"image": IMAGE, "role": ROLE, "memory_mb": 1024, "cpu_shares": 2000}
    async with http.post(f"{url}/api/containers", json=body, headers=headers) as resp:
        made = await resp.json()
        assert resp.status == 202, made
    marks: dict[str, float] = {}
    while True:
        async with http.get(f"{url}/api/containers/{made['db_id']}", headers=headers) as resp:
            row = await resp.json()
        now = time.perf_counter() - t0
        if row["status"] == "configuring":
            marks.setdefault("usable", now)
        if row["role_state"] == "installing":
            marks.setdefault("installing", now)
        if row["role_state"] in ("installed", "failed"):
            marks["done"] = now
            break
        if now > TIMEOUT_S:
            raise AssertionError(f"role not installed after {TIMEOUT_S} s: {row}")
        await asyncio.sleep(0.25)  # polling interval of the measurement
    assert row["role_state"] == "installed", row
    async with http.delete(f"{url}/api/containers/{made['db_id']}", headers=headers) as resp:
        assert resp.status == 200
    return marks


async def run() -> dict[str, float]:
    async with running_backend() as backend, aiohttp.ClientSession() as http:
        _, token = await backend.user(tier="enterprise")
        headers = {"Authorization": f"Bearer {token}"}
        cold = await _one(http, backend.url, headers)
        warm = await _one(http, backend.url, headers)
    ratio = cold["done"] / warm["done"]
    print(f"create to role installed: role {ROLE!r} on {IMAGE} (runsc, 2 CPUs, 1024 MB)")
    for label, marks in (("cold (cache empty)", cold), ("warm (cache ready)", warm)):
        print(
            f"  {label}: installed after {marks['done']:6.1f} s  "
            f"(usable after {marks.get('usable', float('nan')):4.1f} s, "
            f"install started after {marks.get('installing', float('nan')):5.1f} s)"
        )
    download = cold["installing"] - warm["installing"]
    print(f"  host-side download in the cold run: about {download:.1f} s")
    print(f"  ratio cold/warm = {ratio:.3f}")
    return {"roles_cold_s": cold["done"], "roles_warm_s": warm["done"], "roles_ratio": ratio}


if __name__ == "__main__":
    asyncio.run(run())
