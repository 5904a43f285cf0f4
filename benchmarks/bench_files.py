"""File transfer throughput: a 256 MB file uploaded and downloaded through the API
(``corral.client``: multipart up, written in place on the sandbox's volume; read in place
down), against ``docker cp`` of the same file into and out of the same sandbox, in the same
run. The ratios are throughput API / docker cp (target >= 0.8 both ways)."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from backend.docker_service import DockerService
from backend.files.tar_stream import TarReader
from benchmarks.common import server_process, summary
from corral.client import CorralClient
from corral.local import local_admin_token

SIZE_MB = 256
ROUNDS = 5
HOME = "/home/user"


def _docker_cp(source: str, target: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "cp", source, target], check=True, capture_output=True)
    return time.perf_counter() - t0


async def _tar_listing(container_id: str, path: str) -> float:
    """How long a listing from the engine's archive stream takes (what a directory off the
    volume costs): every header read, the data skipped."""
    service = DockerService(None)
    try:
        t0 = time.perf_counter()
        async for _ in TarReader(await service.read_archive(container_id, path)):
            pass
        return time.perf_counter() - t0
    finally:
        await service.aclose()
        service.close()


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        source = work / "payload.bin"
        with source.open("wb") as handle:
            block = os.urandom(1 << 20)
            for _ in range(SIZE_MB):
                handle.write(block)
        async with server_process(data_dir, instance) as server:
            token = await local_admin_token(server.settings)
            async with CorralClient(server.url, token) as client:
                made = await client.create_container("corral/busybox", disk_mb=2048, wait=True)
                ident, docker_id = made["db_id"], made["id"]
                times: dict[str, list[float]] = {
                    k: [] for k in ("cp_up", "api_up", "cp_down", "api_down")
                }
                # One round first, not counted: each side's first copy makes the files.
                await asyncio.to_thread(_docker_cp, str(source), f"{docker_id}:{HOME}/cp.bin")
                await client.upload_file(ident, HOME, source, name="api.bin")

                async def cp_up() -> float:
                    return await asyncio.to_thread(
                        _docker_cp, str(source), f"{docker_id}:{HOME}/cp.bin"
                    )

                async def api_up() -> float:
                    t0 = time.perf_counter()
                    await client.upload_file(ident, HOME, source, name="api.bin")
                    return time.perf_counter() - t0

                async def cp_down() -> float:
                    return await asyncio.to_thread(
                        _docker_cp, f"{docker_id}:{HOME}/cp.bin", str(work / "cp-back.bin")
                    )

                async def api_down() -> float:
                    t0 = time.perf_counter()
                    await client.download_file(ident, f"{HOME}/api.bin", work / "api-back.bin")
                    return time.perf_counter() - t0

                async def make_way(key: str) -> None:
                    """Remove what the copy is about to make (untimed), so that every copy
                    writes a new file: ``docker cp`` removes a file it replaces before writing
                    it, the API keeps it until the new one is whole, and here memory freed by
                    the old file was several times faster to fill than memory not yet used."""
                    side, way = key.split("_")
                    if way == "up":
                        await client.delete_file(ident, f"{HOME}/{side}.bin")
                    else:
                        (work / f"{side}-back.bin").unlink(missing_ok=True)
                    await asyncio.to_thread(os.sync)  # the disk settled, outside the timing

                steps = {"cp_up": cp_up, "api_up": api_up, "cp_down": cp_down, "api_down": api_down}
                for round_ in range(ROUNDS):
                    # The two sides take turns going first.
                    order = (
                        list(steps)
                        if round_ % 2 == 0
                        else ["api_up", "cp_up", "api_down", "cp_down"]
                    )
                    for key in order:
                        await make_way(key)
                        times[key].append(await steps[key]())
                assert (work / "api-back.bin").stat().st_size == SIZE_MB << 20
                times["api_list"], times["tar_list"] = [], []
                for _ in range(5):
                    t0 = time.perf_counter()
                    listing = await client.list_files(ident, HOME)
                    times["api_list"].append(time.perf_counter() - t0)
                    assert listing["count"] == 2
                    times["tar_list"].append(await _tar_listing(docker_id, HOME))
    median = {k: statistics.median(v) for k, v in times.items() if not k.endswith("list")}
    up = median["cp_up"] / median["api_up"]
    down = median["cp_down"] / median["api_down"]
    mbps = {k: SIZE_MB / v for k, v in median.items()}
    print(
        f"a {SIZE_MB} MB file into and out of a running sandbox's volume (runsc), {ROUNDS} rounds"
    )
    for key, label in (
        ("cp_up", "docker cp into the sandbox    "),
        ("api_up", "API upload (corral.client)    "),
        ("cp_down", "docker cp out of the sandbox  "),
        ("api_down", "API download (corral.client)  "),
    ):
        print(f"  {label}: {summary(times[key])}  ({mbps[key]:.0f} MB/s)")
    print(f"listing {HOME} (two {SIZE_MB} MB files in it)")
    print(f"  API (read in place on the volume)   : {summary(times['api_list'])}")
    print(f"  the engine's tar stream of it       : {summary(times['tar_list'])}")
    print(f"  throughput ratio API/docker cp: upload {up:.2f}, download {down:.2f} (target >= 0.8)")
    return {
        "files_upload_ratio": up,
        "files_download_ratio": down,
        "files_list_p50_s": statistics.median(times["api_list"]),
    }


if __name__ == "__main__":
    asyncio.run(run())
