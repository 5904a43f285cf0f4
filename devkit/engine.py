"""Leaving the engine and the host as they were: what a test, benchmark or script made is found
by its instance label (``corral.instance``, which everything a backend makes carries) and by its
data directory, and removed; nothing else is touched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker


def remove_instance(instance: str, client: docker.DockerClient | None = None) -> None:
    """Remove every container and volume of one backend instance (by its label)."""
    own = client is None
    engine = docker.from_env(version="auto") if client is None else client
    label = f"corral.instance={instance}"
    try:
        for container in engine.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        for volume in engine.volumes.list(filters={"label": label}):
            volume.remove(force=True)
    finally:
        if own:
            engine.close()


def unmount_volumes(data_dir: Path) -> None:
    """Unmount the ext4 volume images a backend left mounted under ``data_dir`` (those of the
    first engine in ``volumes``, the other engines' in ``volumes/<engine>``)."""
    _unmount_under(data_dir / "volumes", depth=2)


def _unmount_under(folder: Path, depth: int) -> None:
    if depth == 0 or not folder.is_dir():
        return
    for child in folder.iterdir():
        if os.path.ismount(child):
            subprocess.run(["umount", "-l", str(child)], check=False)
        elif child.is_dir():
            _unmount_under(child, depth - 1)


def clean_up(instance: str, data_dir: Path, client: docker.DockerClient | None = None) -> None:
    """Both: the instance's containers and volumes, then the data directory's mounts."""
    remove_instance(instance, client)
    unmount_volumes(data_dir)
