"""Backend configuration: one frozen object built once and handed to ``create_app``.

Values come, lowest priority first, from the defaults here, a TOML file (``config.toml`` in the data
directory, or the file named by ``CORRAL_CONFIG``), and environment variables (``DATABASE_URL`` and
``CORRAL_*``). Tier limits live here and nowhere else: the API reports them to clients, so consoles
and scripts never carry a copy.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Runtime = Literal["runsc", "runc"]


@dataclass(frozen=True)
class Range:
    """An inclusive allowed range for one resource, in the resource's own unit."""

    min: int
    max: int

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True)
class TierLimits:
    """What a tier may run: how many containers, each resource's range and its default."""

    name: str
    containers: int
    memory_mb: Range
    cpu_shares: Range
    disk_mb: Range
    default_memory_mb: int
    default_cpu_shares: int
    default_disk_mb: int

    def range_for(self, resource: str) -> Range:
        value = getattr(self, resource)
        assert isinstance(value, Range)
        return value

    def default_for(self, resource: str) -> int:
        value = getattr(self, f"default_{resource}")
        assert isinstance(value, int)
        return value

    def as_json(self) -> dict[str, Any]:
        return {
            "tier": self.name,
            "containers": self.containers,
            **{
                resource: {
                    "min": self.range_for(resource).min,
                    "max": self.range_for(resource).max,
                    "default": self.default_for(resource),
                }
                for resource in RESOURCES
            },
        }


RESOURCES: tuple[str, ...] = ("memory_mb", "cpu_shares", "disk_mb")


def _tier(
    name: str,
    containers: int,
    memory: tuple[int, int],
    cpu: tuple[int, int],
    disk: tuple[int, int],
    defaults: tuple[int, int, int],
) -> TierLimits:
    return TierLimits(
        name=name,
        containers=containers,
        memory_mb=Range(*memory),
        cpu_shares=Range(*cpu),
        disk_mb=Range(*disk),
        default_memory_mb=defaults[0],
        default_cpu_shares=defaults[1],
        default_disk_mb=defaults[2],
    )


DEFAULT_TIERS: dict[str, TierLimits] = {
    t.name: t
    for t in (
        _tier("guest", 1, (512, 512), (500, 500), (2048, 2048), (512, 500, 2048)),
        _tier("free", 5, (256, 2048), (250, 2000), (1024, 10240), (512, 500, 2048)),
        _tier("pro", 10, (256, 4096), (250, 4000), (1024, 20480), (1024, 1000, 5120)),
        _tier("enterprise", 25, (256, 8192), (250, 8000), (1024, 51200), (2048, 2000, 10240)),
    )
}


@dataclass(frozen=True)
class ImageSpec:
    """An image that create accepts. Images are made locally; the backend never pulls one."""

    name: str
    description: str
    distribution: str = ""

    @property
    def reference(self) -> str:
        """The full reference, with ``:latest`` when the name carries no tag."""
        return self.name if ":" in self.name.rsplit("/", 1)[-1] else f"{self.name}:latest"


DEFAULT_IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("corral/busybox", "BusyBox: a shell and the core tools, tiny and instant"),
    ImageSpec("corral/debian:bookworm", "Debian 12 (bookworm), minimal base", "debian-bookworm"),
)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "corral"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8420
    runtime: Runtime = "runsc"
    docker_host: str | None = None
    docker_workers: int = 32
    docker_timeout_s: int = 60
    stop_timeout_s: int = 3
    sandbox_network: str = "none"
    pids_limit: int = 512
    # A sandbox's output (its log) kept by the engine: two json-file logs of this many MB.
    sandbox_log_max_mb: int = 10
    # Live usage: how often the stats stream sends every running sandbox's latest sample.
    stats_interval_s: float = 2.0
    tiers: Mapping[str, TierLimits] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    default_tier: str = "free"
    images: tuple[ImageSpec, ...] = DEFAULT_IMAGES
    guest_session_hours: int = 50
    guest_grace_hours: int = 24 * 7
    jwt_lifetime_hours: int = 24 * 7
    max_body_bytes: int = 64 * 1024
    event_log_per_user: int = 10_000
    instance_label: str | None = None
    disk_quotas: str = "auto"  # "auto": ext4-backed when possible; "ext4": required; "none"
    # The events WebSocket. A subscriber's queue holds this many undelivered events; one that
    # fills it is closed with 1013. The socket's kernel send buffer is capped (bytes; None: the
    # kernel's autotuning, up to megabytes) so a client that stops reading fills its queue after
    # about a send buffer's worth of events, and that is all the memory it can hold.
    event_queue_size: int = 256
    event_send_buffer_bytes: int | None = 128 * 1024
    event_heartbeat_s: float = 30.0
    event_close_timeout_s: float = 5.0
    event_prune_interval_s: float = 60.0
    # Roles. The catalog ships in backend/data/roles.toml; an operator's file (``roles_file``, or
    # roles.toml in the data directory) is merged over it. Packages are downloaded on the host,
    # inside the debootstrap root filesystem of the image's distribution
    # (``<rootfs_dir>/<distribution>``, kept by scripts/images.sh), into ``package_cache_dir``
    # (default ``<data dir>/packages``), because sandboxes have no network here.
    roles_file: Path | None = None
    package_cache_dir: Path | None = None
    rootfs_dir: Path = Path("/var/lib/corral/rootfs")
    role_installs: int = 2  # image builds (or fallback installs) that run at once
    role_install_timeout_s: float = 1800.0
    role_prepare_timeout_s: float = 900.0
    # Role images are built in a short-lived container under this runtime (native speed; see
    # backend.containers.role_images). An engine without it installs roles in each sandbox.
    role_build_runtime: str = "runc"
    role_build_timeout_s: float = 900.0
    # Host-wide locks (role image builds): role images belong to the engine, not to one data
    # directory, so every backend and CLI on the host must see the same locks.
    lock_dir: Path = Path("/run/lock/corral")

    @property
    def database_path(self) -> Path:
        return self.data_dir / "corral.db"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.database_path}"

    @property
    def volumes_dir(self) -> Path:
        return self.data_dir / "volumes"

    @property
    def packages_dir(self) -> Path:
        return self.package_cache_dir or self.data_dir / "packages"

    @property
    def operator_roles_path(self) -> Path:
        return self.roles_file or self.data_dir / "roles.toml"

    @property
    def secret_path(self) -> Path:
        return self.data_dir / "jwt-secret"

    def tier(self, name: str) -> TierLimits:
        return self.tiers.get(name) or self.tiers[self.default_tier]

    def image(self, name: str) -> ImageSpec | None:
        for spec in self.images:
            if name in (spec.name, spec.reference):
                return spec
        return None

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _tiers_from(raw: Mapping[str, Any], base: Mapping[str, TierLimits]) -> dict[str, TierLimits]:
    tiers = dict(base)
    for name, spec in raw.items():
        current = tiers.get(name) or tiers["free"]
        kwargs: dict[str, Any] = {"name": name}
        kwargs["containers"] = int(spec.get("containers", current.containers))
        for resource in RESOURCES:
            rng = spec.get(resource)
            kwargs[resource] = (
                Range(int(rng[0]), int(rng[1])) if rng else current.range_for(resource)
            )
            kwargs[f"default_{resource}"] = int(
                spec.get(f"default_{resource}", current.default_for(resource))
            )
        tiers[name] = TierLimits(**kwargs)
    return tiers


def load_settings(
    data_dir: Path | None = None, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Build settings from defaults, the TOML file and the environment, then explicit overrides."""
    env = os.environ
    base_dir = data_dir or (Path(env["CORRAL_DATA_DIR"]) if env.get("CORRAL_DATA_DIR") else None)
    base_dir = base_dir or default_data_dir()
    config_path = config_file or (Path(env["CORRAL_CONFIG"]) if env.get("CORRAL_CONFIG") else None)
    config_path = config_path or base_dir / "config.toml"
    raw: dict[str, Any] = {}
    if config_path.is_file():
        raw = tomllib.loads(config_path.read_text())

    values: dict[str, Any] = {"data_dir": base_dir}
    simple = {
        "database_url": str,
        "host": str,
        "port": int,
        "docker_host": str,
        "docker_workers": int,
        "stop_timeout_s": int,
        "sandbox_network": str,
        "pids_limit": int,
        "sandbox_log_max_mb": int,
        "stats_interval_s": float,
        "default_tier": str,
        "guest_session_hours": int,
        "max_body_bytes": int,
        "event_log_per_user": int,
        "disk_quotas": str,
        "event_queue_size": int,
        "event_send_buffer_bytes": int,
        "event_heartbeat_s": float,
        "event_close_timeout_s": float,
        "event_prune_interval_s": float,
        "roles_file": Path,
        "package_cache_dir": Path,
        "rootfs_dir": Path,
        "role_installs": int,
        "role_install_timeout_s": float,
        "role_prepare_timeout_s": float,
        "role_build_runtime": str,
        "role_build_timeout_s": float,
        "lock_dir": Path,
    }
    for key, kind in simple.items():
        if key in raw:
            values[key] = kind(raw[key])
    if "runtime" in raw:
        values["runtime"] = raw["runtime"]
    if "tiers" in raw:
        values["tiers"] = _tiers_from(raw["tiers"], DEFAULT_TIERS)
    if "images" in raw:
        values["images"] = tuple(
            ImageSpec(i["name"], i.get("description", ""), i.get("distribution", ""))
            for i in raw["images"]
        )

    if env.get("DATABASE_URL"):
        values["database_url"] = env["DATABASE_URL"]
    if env.get("CORRAL_RUNTIME"):
        values["runtime"] = env["CORRAL_RUNTIME"]
    if env.get("CORRAL_PACKAGE_CACHE_DIR"):
        values["package_cache_dir"] = Path(env["CORRAL_PACKAGE_CACHE_DIR"])
    if env.get("CORRAL_ROLES_FILE"):
        values["roles_file"] = Path(env["CORRAL_ROLES_FILE"])
    if env.get("DOCKER_HOST") and "docker_host" not in values:
        values["docker_host"] = env["DOCKER_HOST"]
    values.update(overrides)
    if values.get("disk_quotas", "auto") not in ("auto", "ext4", "none"):
        raise ValueError("disk_quotas must be 'auto', 'ext4' or 'none'")
    if values.get("runtime", "runsc") not in ("runsc", "runc"):
        raise ValueError(f"runtime must be 'runsc' or 'runc', not {values['runtime']!r}")
    return Settings(**values)
