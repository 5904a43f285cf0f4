"""The scale-out shape on one machine, to try it: the throwaway PostgreSQL (scripts/postgres.sh), a
second dockerd beside the machine's (devkit/second_engine.py: own socket, data root, exec root and
pidfile), and N ``corral serve`` replicas on that database and both engines.

    python scripts/cluster.py up [--replicas N]   # (just cluster up) prints URLs and an admin token
    python scripts/cluster.py down                # (just cluster down) removes everything it made

Everything lives in ``$CORRAL_CLUSTER_DIR`` (default /var/tmp/corral-cluster); ``up`` when it is
already up says so and prints the same; ``down`` stops the replicas, removes the sandboxes and
volumes they made on both engines, stops the second dockerd, drops the database and the folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.admin import Admin
from backend.settings import load_settings
from devkit.backend_process import BackendProcess
from devkit.engine import remove_instance, unmount_volumes
from devkit.postgres import Postgres
from devkit.second_engine import SecondEngine
from devkit.waiting import wait_for_sync

ROOT = Path(os.environ.get("CORRAL_CLUSTER_DIR", "/var/tmp/corral-cluster"))
STATE = ROOT / "cluster.json"
INSTANCE = "corral-cluster"
DATABASE = "corral_cluster"
CONFIG = """engine_probe_interval_s = 1

[[engines]]
name = "local"

[[engines]]
name = "second"
docker_host = "{second}"
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def up(replicas: int) -> dict[str, object]:
    if STATE.exists():
        state = json.loads(STATE.read_text())
        if all(_alive(int(p)) for p in state["pids"]):
            print("already up", file=sys.stderr)
            return dict(state)
        down()
    ROOT.mkdir(parents=True, exist_ok=True)
    engine = SecondEngine(ROOT / "e2")
    if not engine.answers():  # one started by an earlier ``up`` is used as it is
        engine.start()
    engine.load_images()
    postgres = Postgres.ensure()
    if DATABASE not in postgres.database_names(DATABASE):
        postgres.create_database(DATABASE)
    url = postgres.url_for(DATABASE)
    env = {
        "CORRAL_DATABASE_URL": url,
        "CORRAL_VOLUME_IMAGES_DIR": str(ROOT / "volumes"),
        "CORRAL_INSTANCE_LABEL": INSTANCE,
        "CORRAL_LOG": "INFO",
    }
    pids, urls = [], []
    for index in range(replicas):
        data_dir = ROOT / f"replica-{index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "config.toml").write_text(CONFIG.format(second=engine.host))
        replica = BackendProcess(data_dir, INSTANCE, env, log=data_dir / "serve.log", detached=True)
        replica.launch()
        assert replica.pid is not None
        urls.append(replica.url)
        pids.append(replica.pid)
        # Said before waiting: a replica that does not come up is still stopped by ``down``.
        STATE.write_text(json.dumps({"pids": pids, "urls": urls}) + "\n")
        replica.wait_until_answering(60)
    token = asyncio.run(_admin_token(ROOT / "replica-0", url))
    state = {"pids": pids, "urls": urls, "token": token, "database_url": url}
    STATE.write_text(json.dumps(state, indent=2) + "\n")
    return state


async def _admin_token(data_dir: Path, url: str) -> str:
    settings = load_settings(data_dir=data_dir, database_url=url)
    async with Admin(settings) as tools:
        if "operator" not in [user.username for user in await tools.list_users()]:
            await tools.add_user("operator", None, "pro", True)
        token, _ = await tools.issue_token("operator", ["read", "write"], "cluster", None)
    return token


def down() -> None:
    state = json.loads(STATE.read_text()) if STATE.exists() else {"pids": []}
    for pid in state["pids"]:
        if _alive(int(pid)):
            os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(_alive(int(p)) for p in state["pids"]) and time.monotonic() < deadline:
        time.sleep(0.1)  # waiting for the replicas to leave, with a deadline
    engine = SecondEngine(ROOT / "e2")
    if (ROOT / "e2").exists():
        if not engine.answers():
            engine.start()  # to remove what the replicas made on it
        client = engine.client()
        remove_instance(INSTANCE, client)
        client.close()
        _stop_dockerd(ROOT / "e2" / "docker.pid")
        engine.destroy()
    remove_instance(INSTANCE)
    unmount_volumes(ROOT)
    postgres = Postgres.ensure()
    postgres.drop_database(DATABASE)
    subprocess.run(["rm", "-rf", str(ROOT)], check=False)


def _stop_dockerd(pidfile: Path) -> None:
    """The dockerd started by an earlier ``up`` (not a child of this process)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        wait_for_sync(lambda: not _alive(pid), 30, what="the second dockerd to stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    start = sub.add_parser("up", help="start PostgreSQL, a second engine and the replicas")
    start.add_argument("--replicas", type=int, default=2)
    sub.add_parser("down", help="remove everything up made")
    args = parser.parse_args()
    if args.verb == "down":
        down()
        print("down", file=sys.stderr)
        return
    state = up(args.replicas)
    for url in state["urls"]:  # type: ignore[attr-defined]
        print(f"replica {url}")
    print(f"admin token: {state['token']}")
    print(f"console: corral --server {state['urls'][0]} --token {state['token']}")  # type: ignore[index]


if __name__ == "__main__":
    main()
