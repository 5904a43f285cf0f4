"""Backend configuration: one frozen object, declared once, built once and handed to ``create_app``.

Every field of ``Settings`` can be set, highest priority first, by an explicit override in code
(``load_settings(port=0)``, ``settings.with_overrides(...)``), the environment (``CORRAL_<FIELD>``,
plus ``DATABASE_URL``), the TOML file (``config.toml`` in the data directory, or the file named by
``CORRAL_CONFIG``), ``DOCKER_HOST``, and the defaults here. An unknown key or a bad value is a
``ConfigError`` naming the key and where it came from. Tier limits (``backend.tiers``) are part of
the settings and nowhere else: the API reports them to clients, so consoles never carry a copy.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from backend.ratelimit import Rate
from backend.tiers import DEFAULT_TIERS, RESOURCES, STRICT_KEYS, Range, TierLimits

__all__ = [
    "DEFAULT_IMAGES",
    "DEFAULT_TIERS",
    "LOCAL_ENGINE",
    "RESOURCES",
    "ConfigError",
    "EngineSpec",
    "ImageSpec",
    "Range",
    "Rate",
    "Settings",
    "TierLimits",
    "load_settings",
]

Runtime = Literal["runsc", "runc"]
# The engine of a configuration without ``engines``, and of rows older than several engines.
LOCAL_ENGINE = "local"
DiskQuotas = Literal["auto", "ext4", "none"]


@dataclass(frozen=True, config=STRICT_KEYS)
class ImageSpec:
    """An image that create accepts. Images are made locally; the backend never pulls one."""

    name: str
    description: str = ""
    distribution: str = ""

    @property
    def reference(self) -> str:
        """The full reference, with ``:latest`` when the name carries no tag."""
        return self.name if ":" in self.name.rsplit("/", 1)[-1] else f"{self.name}:latest"


# An engine's name: it is stored in each container's row, shown in lists and used in routes.
ENGINE_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"


@dataclass(frozen=True, config=STRICT_KEYS)
class EngineSpec:
    """One Docker engine sandboxes are placed on (``[[engines]]`` in TOML). ``volumes_dir`` is
    where its ext4 volume images are mounted on the engine's host; None: the volumes folder for
    the first engine, ``<volumes folder>/<name>`` for the others (``Settings.engine_specs``).
    ``labels`` are the operator's own notes (shown by ``GET /api/engines``)."""

    name: str = Field(pattern=ENGINE_NAME)
    docker_host: str | None = None
    volumes_dir: Path | None = None
    labels: Mapping[str, str] = Field(default_factory=dict)


DEFAULT_IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("corral/busybox", "BusyBox: a shell and the core tools, tiny and instant"),
    ImageSpec("corral/debian:bookworm", "Debian 12 (bookworm), minimal base", "debian-bookworm"),
)


DEFAULT_IMAGE_ALIASES: Mapping[str, str] = {
    "debian": "corral/debian:bookworm",
    "busybox": "corral/busybox",
}


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "corral"


class Settings(BaseSettings):
    """Every setting, declared once. Building one validates what it is given and nothing else:
    ``load_settings`` is the one place that reads the environment and the TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="CORRAL_", env_ignore_empty=True, extra="forbid", frozen=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None  # None: SQLite in the data directory (corral.db)
    # A database server's connections kept open per process (as many again under load).
    database_pool_size: int = Field(default=10, ge=1, le=100)
    host: str = "127.0.0.1"
    port: int = 8420
    runtime: Runtime = "runsc"
    docker_host: str | None = None
    # Several engines (backend.engines): empty, one engine named "local" on ``docker_host``.
    engines: tuple[EngineSpec, ...] = ()
    # How often each engine's health (reachable, runtime, memory) is checked in the background.
    engine_probe_interval_s: float = Field(default=2.0, gt=0)
    docker_workers: int = 32
    docker_timeout_s: int = 60
    stop_timeout_s: int = 3
    sandbox_network: str = "none"
    pids_limit: int = 512
    # A sandbox's output (its log) kept by the engine: two json-file logs of this many MB.
    sandbox_log_max_mb: int = 10
    # Live usage: how often the stats stream sends every running sandbox's latest sample.
    stats_interval_s: float = 2.0
    # A tier given in part (``[tiers.free]`` with only ``containers``) takes the rest from the
    # default tier of that name, or from "free" for a new one; the default tiers stay.
    tiers: Mapping[str, TierLimits] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    default_tier: str = "free"
    images: tuple[ImageSpec, ...] = DEFAULT_IMAGES
    # Other names create accepts for an image (alias -> an image's name or reference): the image
    # keys clients written for Rexec send. Given ones are merged over the defaults ("" removes
    # one). An alias naming no configured image is ignored (the create is refused as an unknown
    # image), and a configured image's own name always wins.
    image_aliases: Mapping[str, str] = Field(default_factory=lambda: dict(DEFAULT_IMAGE_ALIASES))
    guest_session_hours: int = 50
    guest_grace_hours: int = 24 * 7
    jwt_lifetime_hours: int = 24 * 7
    # A checked token is trusted this long before the database is asked again. Revocations and
    # sign-outs made through this backend apply at once; ones made by another process (the
    # ``corral admin`` commands) within this many seconds. 0: ask every time.
    auth_cache_s: float = Field(default=5.0, ge=0, le=60)
    max_body_bytes: int = 64 * 1024
    # Rate limits (backend.ratelimit), each [count, seconds]: `count` requests at once, then
    # `count` per `seconds`; a count of 0: no limit. Sign-in per client IP, writes per user.
    guest_signin_rate: Rate = Rate(10, 60.0)
    login_rate: Rate = Rate(10, 60.0)
    write_rate: Rate = Rate(300, 60.0)
    rate_limit_keys: int = 100_000  # buckets kept per limit (least recently used go first)
    # Proxies (addresses or networks) whose X-Forwarded-For names the client; none by default,
    # so the header is ignored and the client is the TCP peer.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    # Guest sessions live at once (not ended, not signed out); a sign-in past it is 429.
    max_guest_sessions: int = 200
    event_log_per_user: int = 10_000
    instance_label: str | None = None
    # The key sessions (JWTs) are signed with; unset: one made once and kept in the database, so
    # every replica on it shares it (backend.cluster.shared). At least 32 characters.
    jwt_secret: SecretStr | None = Field(default=None, min_length=32)
    # Where volume images live (ext4 quotas); default ``<data dir>/volumes``. Replicas on one
    # host set one folder for all, so each can resize or mount any sandbox's volume.
    volume_images_dir: Path | None = None
    disk_quotas: DiskQuotas = "auto"  # "auto": ext4-backed when possible; "ext4": required
    # The events WebSocket. A subscriber's queue holds this many undelivered events; one that
    # fills it is closed with 1013. The socket's kernel send buffer is capped (bytes; None: the
    # kernel's autotuning, up to megabytes) so a client that stops reading fills its queue after
    # about a send buffer's worth of events, and that is all the memory it can hold.
    event_queue_size: int = 256
    event_send_buffer_bytes: int | None = 128 * 1024
    event_heartbeat_s: float = 30.0
    event_close_timeout_s: float = 5.0
    event_prune_interval_s: float = 60.0
    # Agents report this often (they are told at registration); one not heard from for four
    # of these is marked offline (its replica died, or its link hangs).
    agent_heartbeat_s: float = Field(default=10.0, gt=0, le=300)
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: ``load_settings`` reads the rest, so ``with_overrides`` and
        tests never pick up the environment by surprise."""
        return (init_settings,)

    @field_validator("tiers", mode="before")
    @classmethod
    def _complete_tiers(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # pydantic says what is wrong with it
        tiers: dict[str, Any] = dict(DEFAULT_TIERS)
        for name, spec in value.items():
            if isinstance(spec, Mapping):
                base = DEFAULT_TIERS.get(name) or DEFAULT_TIERS["free"]
                spec = {**dataclasses.asdict(base), **spec, "name": name}
            tiers[name] = spec
        return tiers

    @field_validator("image_aliases", mode="before")
    @classmethod
    def _merge_aliases(cls, value: Any) -> Any:
        """The operator's aliases over the default ones; an alias set to "" is removed."""
        if not isinstance(value, Mapping):
            return value  # pydantic says what is wrong with it
        merged = {**DEFAULT_IMAGE_ALIASES, **value}
        return {alias: target for alias, target in merged.items() if target != ""}

    @field_validator("default_tier")
    @classmethod
    def _known_tier(cls, value: str, info: ValidationInfo) -> str:
        tiers = info.data.get("tiers")
        if tiers is not None and value not in tiers:
            raise ValueError(f"{value!r} is not a tier; the tiers are {', '.join(tiers)}")
        return value

    @field_validator("engines")
    @classmethod
    def _unique_engines(cls, value: tuple[EngineSpec, ...]) -> tuple[EngineSpec, ...]:
        names = [spec.name for spec in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"engine {name!r} is listed twice")
        return value

    @model_validator(mode="after")
    def _tier_engines_known(self) -> Settings:
        known = {spec.name for spec in self.engine_specs}
        for tier in self.tiers.values():
            for name in tier.engines:
                if name not in known:
                    raise ValueError(
                        f"tier {tier.name!r} names engine {name!r}, which is not configured; "
                        f"the engines are {', '.join(sorted(known))}"
                    )
        return self

    @property
    def engine_specs(self) -> tuple[EngineSpec, ...]:
        """The engines, each with its volumes folder filled in: ``engines``, or one engine named
        ``local`` on ``docker_host`` (the configuration before several engines existed)."""
        specs = self.engines or (EngineSpec(name=LOCAL_ENGINE, docker_host=self.docker_host),)
        return tuple(
            dataclasses.replace(
                spec,
                volumes_dir=spec.volumes_dir
                or (self.volumes_dir if index == 0 else self.volumes_dir / spec.name),
            )
            for index, spec in enumerate(specs)
        )

    @property
    def database_path(self) -> Path:
        return self.data_dir / "corral.db"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.database_path}"

    @property
    def volumes_dir(self) -> Path:
        return self.volume_images_dir or self.data_dir / "volumes"

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
        """The image ``name`` names: by its name or reference, else by an alias."""
        for candidate in (name, self.image_aliases.get(name)):
            for spec in self.images:
                if candidate in (spec.name, spec.reference):
                    return spec
        return None

    def aliases_of(self, spec: ImageSpec) -> list[str]:
        """The aliases that lead to ``spec`` (sorted; not those its own names shadow)."""
        return sorted(
            alias
            for alias in self.image_aliases
            if self.image(alias) == spec and alias not in (spec.name, spec.reference)
        )

    def with_overrides(self, **changes: Any) -> Settings:
        """These settings with ``changes``, validated as a whole again."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return _validated([_Layer("setting", {**current, **changes})])


class ConfigError(ValueError):
    """A setting that cannot be used (an unknown key, a bad value, a file that is not TOML), said
    with the key and where it came from: the file, the environment variable or the code."""


@dataclasses.dataclass(frozen=True)
class _Layer:
    """Values from one place: ``where`` is "setting" (code), "environment" or the TOML file's
    path; ``names`` is how the environment spells each key (``CORRAL_PORT``)."""

    where: str
    values: Mapping[str, Any]
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def describe(self, loc: tuple[int | str, ...], problem: str) -> str:
        key = _dotted(loc)
        if self.names and loc:
            inner = f" ({key})" if len(loc) > 1 else ""
            return f"environment variable {self.names[str(loc[0])]}{inner}: {problem}"
        if self.where == "setting":
            return f"setting {key}: {problem}"
        return f"{self.where}: {key}: {problem}"

    def unknown(self, loc: tuple[int | str, ...]) -> str:
        where = "" if self.where == "setting" else f"{self.where}: "
        return f"{where}unknown setting {_dotted(loc)!r}"


def _dotted(loc: tuple[int | str, ...]) -> str:
    """``("tiers", "free", "containers")`` as ``tiers.free.containers``; ``images[0].name``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)[1:]


def _validated(layers: list[_Layer]) -> Settings:
    """One ``Settings`` from ``layers`` (highest priority first; a key is taken whole from the
    first layer that has it), or a ``ConfigError`` naming every bad key and its origin."""
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer.values)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = [_problem(error, layers) for error in exc.errors()]
    raise ConfigError("; ".join(problems))


# How pydantic says a key is not declared: in a model, and in a dataclass (tiers, images).
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def _problem(error: ErrorDetails, layers: list[_Layer]) -> str:
    loc = tuple(error["loc"])
    layer = next((la for la in layers if loc and loc[0] in la.values), layers[0])
    if error["type"] in _UNKNOWN_KEY:
        return layer.unknown(loc)
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] != "value_error" and isinstance(value, str | int | float | bool):
        message += f" (got {value!r})"
    return layer.describe(loc, message)


def _environment() -> list[_Layer]:
    """``CORRAL_<FIELD>`` for every field (complex ones, ``tiers`` and ``images``, as JSON), then
    ``DATABASE_URL``: the name most database tools and hosts set."""
    try:
        values = EnvSettingsSource(Settings)()
    except SettingsError as exc:
        raise ConfigError(f"environment: {exc}") from None
    layers = [_Layer("environment", values, {key: f"CORRAL_{key.upper()}" for key in values})]
    if os.environ.get("DATABASE_URL"):
        url = {"database_url": os.environ["DATABASE_URL"]}
        layers.append(_Layer("environment", url, {"database_url": "DATABASE_URL"}))
    return layers


def _read_toml(path: Path, required: bool) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such configuration file") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_settings(
    data_dir: Path | None = None, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Settings from, highest priority first: ``overrides`` (and ``data_dir``), the environment
    (``CORRAL_<FIELD>``, ``DATABASE_URL``), the TOML file, ``DOCKER_HOST``, the defaults.

    The file is ``config_file``, else ``$CORRAL_CONFIG`` (both must exist), else ``config.toml``
    in the data directory (``data_dir``, ``$CORRAL_DATA_DIR`` or the default), when it exists.
    Raises ``ConfigError`` for an unknown key or a bad value, naming it and where it came from.
    """
    if data_dir is not None:
        overrides = {"data_dir": data_dir, **overrides}
    environment = _environment()
    named = config_file or (
        Path(os.environ["CORRAL_CONFIG"]) if os.environ.get("CORRAL_CONFIG") else None
    )
    if named is None:
        base = data_dir or environment[0].values.get("data_dir") or default_data_dir()
        path, required = Path(base) / "config.toml", False
    else:
        path, required = named, True
    layers = [
        _Layer("setting", overrides),
        *environment,
        _Layer(str(path), _read_toml(path, required)),
    ]
    if os.environ.get("DOCKER_HOST"):
        docker_host = {"docker_host": os.environ["DOCKER_HOST"]}
        layers.append(_Layer("environment", docker_host, {"docker_host": "DOCKER_HOST"}))
    return _validated(layers)
