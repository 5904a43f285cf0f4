"""The backend's configuration: every setting from the TOML file and from ``CORRAL_<FIELD>``, the
order between them, and a clear refusal of unknown keys and bad values (``corral serve`` too)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from backend.settings import DEFAULT_TIERS, ConfigError, Range, Rate, Settings, load_settings
from tests.test_cli import corral

# A value unlike the default for every setting, as TOML would hold it. A new setting must be
# added here: the first test checks that this covers them all.
SAMPLES: dict[str, Any] = {
    "data_dir": "/srv/corral-sample",
    "database_url": "sqlite+aiosqlite:////srv/sample.db",
    "database_pool_size": 3,
    "host": "0.0.0.0",
    "port": 9999,
    "runtime": "runc",
    "docker_host": "unix:///srv/docker.sock",
    "engines": [
        {
            "name": "east",
            "docker_host": "unix:///srv/east.sock",
            "volumes_dir": "/srv/east-volumes",
            "labels": {"zone": "a"},
        }
    ],
    "engine_probe_interval_s": 0.7,
    "docker_workers": 3,
    "docker_timeout_s": 11,
    "stop_timeout_s": 9,
    "sandbox_network": "bridge",
    "pids_limit": 77,
    "sandbox_log_max_mb": 4,
    "stats_interval_s": 0.25,
    "tiers": {"free": {"containers": 9, "memory_mb": [128, 1024]}},
    "default_tier": "pro",
    "images": [{"name": "corral/sample:1", "description": "a sample", "distribution": "x"}],
    "image_aliases": {"sample": "corral/sample:1"},
    "guest_session_hours": 2,
    "guest_grace_hours": 3,
    "jwt_lifetime_hours": 4,
    "auth_cache_s": 2.5,
    "max_body_bytes": 1234,
    "guest_signin_rate": [3, 30.0],
    "login_rate": [4, 40.0],
    "write_rate": [0, 1.0],
    "rate_limit_keys": 99,
    "trusted_proxies": ["10.0.0.0/8", "192.0.2.7/32"],
    "max_guest_sessions": 7,
    "event_log_per_user": 55,
    "instance_label": "sample-label",
    "jwt_secret": "a-sample-signing-key-of-32-chars!",
    "volume_images_dir": "/srv/volumes",
    "disk_quotas": "none",
    "event_queue_size": 17,
    "event_send_buffer_bytes": 4096,
    "event_heartbeat_s": 1.5,
    "event_close_timeout_s": 2.5,
    "event_prune_interval_s": 3.5,
    "agent_heartbeat_s": 4.5,
    "roles_file": "/srv/roles.toml",
    "package_cache_dir": "/srv/packages",
    "rootfs_dir": "/srv/rootfs",
    "role_installs": 5,
    "role_install_timeout_s": 10.5,
    "role_prepare_timeout_s": 11.5,
    "role_build_runtime": "runsc",
    "role_build_timeout_s": 12.5,
    "lock_dir": "/srv/locks",
}


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # ints, floats and strings are written alike in TOML and JSON


def _toml(values: dict[str, Any]) -> str:
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items())


def _env_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _assert_samples(settings: Settings) -> None:
    for name, sample in SAMPLES.items():
        got = getattr(settings, name)
        if name == "tiers":
            assert got["free"].containers == 9 and got["free"].memory_mb == Range(128, 1024)
            assert got["free"].disk_mb == DEFAULT_TIERS["free"].disk_mb  # the rest: the default
            assert got["pro"] == DEFAULT_TIERS["pro"]
        elif name == "engines":
            assert [(e.name, e.docker_host, str(e.volumes_dir), dict(e.labels)) for e in got] == [
                ("east", "unix:///srv/east.sock", "/srv/east-volumes", {"zone": "a"})
            ]
        elif name == "images":
            assert [(i.name, i.description, i.distribution) for i in got] == [
                ("corral/sample:1", "a sample", "x")
            ]
        elif name == "image_aliases":  # merged over the defaults
            assert got["sample"] == "corral/sample:1" and got["debian"] == "corral/debian:bookworm"
        elif isinstance(got, Path):
            assert got == Path(sample), name
        elif isinstance(got, SecretStr):
            assert got.get_secret_value() == sample, name
        elif isinstance(got, Rate):
            assert [got.count, got.per_s] == sample, name
        elif name == "trusted_proxies":
            assert [str(network) for network in got] == sample
        else:
            assert got == sample, name


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No CORRAL_* setting, DATABASE_URL or DOCKER_HOST from the environment running the tests."""
    for name in [*(f"CORRAL_{field.upper()}" for field in SAMPLES), "CORRAL_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return monkeypatch


def test_the_samples_cover_every_setting() -> None:
    assert set(SAMPLES) == set(Settings.model_fields)
    defaults = Settings()
    for name, sample in SAMPLES.items():
        if name not in ("tiers", "images"):
            assert str(getattr(defaults, name)) != str(sample), name


def test_every_setting_comes_from_the_toml_file(tmp_path: Path, clean_env: Any) -> None:
    (tmp_path / "config.toml").write_text(_toml({k: v for k, v in SAMPLES.items() if k != "tiers"}))
    with (tmp_path / "config.toml").open("a") as file:  # the tier as a TOML table, as documented
        file.write("\n[tiers.free]\ncontainers = 9\nmemory_mb = [128, 1024]\n")
    settings = load_settings(config_file=tmp_path / "config.toml")
    _assert_samples(settings)


def test_every_setting_comes_from_its_corral_variable(tmp_path: Path, clean_env: Any) -> None:
    for name, sample in SAMPLES.items():
        clean_env.setenv(f"CORRAL_{name.upper()}", _env_value(sample))
    _assert_samples(load_settings())


def test_overrides_beat_the_environment_which_beats_the_file(
    tmp_path: Path, clean_env: Any
) -> None:
    (tmp_path / "config.toml").write_text(
        'port = 1001\nhost = "file-host"\nstop_timeout_s = 7\ndocker_host = "tcp://file:2375"\n'
        'database_url = "sqlite+aiosqlite:////file.db"\n'
    )
    clean_env.setenv("CORRAL_DATA_DIR", str(tmp_path))  # the file is found in the data dir
    clean_env.setenv("CORRAL_PORT", "1002")
    clean_env.setenv("CORRAL_HOST", "env-host")
    clean_env.setenv("DOCKER_HOST", "unix:///env/docker.sock")  # below the file, as before
    clean_env.setenv("DATABASE_URL", "sqlite+aiosqlite:////env.db")  # above it
    settings = load_settings(port=1003)
    assert settings.data_dir == tmp_path
    assert (settings.port, settings.host, settings.stop_timeout_s) == (1003, "env-host", 7)
    assert settings.docker_host == "tcp://file:2375"
    assert settings.database_url == "sqlite+aiosqlite:////env.db"
    assert settings.pids_limit == 512  # the default
    clean_env.setenv("CORRAL_DATABASE_URL", "sqlite+aiosqlite:////corral.db")
    assert load_settings().database_url == "sqlite+aiosqlite:////corral.db"
    (tmp_path / "config.toml").unlink()
    assert load_settings().docker_host == "unix:///env/docker.sock"

    changed = settings.with_overrides(stats_interval_s=0.5)
    assert (changed.stats_interval_s, changed.port, changed.host) == (0.5, 1003, "env-host")
    assert settings.stats_interval_s == 2.0  # frozen: a new object


def test_an_unknown_key_is_refused_with_the_file_and_the_key(
    tmp_path: Path, clean_env: Any
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('port = 1\nsandbox_netwrok = "none"\n[tiers.free]\ncontainerz = 3\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path)
    message = str(caught.value)
    assert f"{config}: unknown setting 'sandbox_netwrok'" in message
    assert f"{config}: unknown setting 'tiers.free.containerz'" in message
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        load_settings(data_dir=tmp_path / "none", bogus=1)


def test_a_bad_value_is_refused_with_where_it_came_from(tmp_path: Path, clean_env: Any) -> None:
    config = tmp_path / "config.toml"
    config.write_text('runtime = "kvm"\n[tiers.pro]\nmemory_mb = [4096, 256]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path)
    message = str(caught.value)
    assert f"{config}: runtime: Input should be 'runsc' or 'runc' (got 'kvm')" in message
    assert f"{config}: tiers.pro.memory_mb: the minimum (4096) is above the maximum" in message

    config.write_text("")
    clean_env.setenv("CORRAL_STOP_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match=r"environment variable CORRAL_STOP_TIMEOUT_S: .*'soon'"):
        load_settings(data_dir=tmp_path)
    clean_env.delenv("CORRAL_STOP_TIMEOUT_S")
    with pytest.raises(ConfigError, match=r"setting disk_quotas: Input should be 'auto', 'ext4'"):
        load_settings(data_dir=tmp_path, disk_quotas="zfs")
    with pytest.raises(ConfigError, match="setting default_tier: 'gold' is not a tier"):
        load_settings(data_dir=tmp_path).with_overrides(default_tier="gold")
    config.write_text("port = [")
    with pytest.raises(ConfigError, match=re.escape(f"{config}: not valid TOML")):
        load_settings(data_dir=tmp_path)
    clean_env.setenv("CORRAL_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match=r"absent\.toml: no such configuration file"):
        load_settings(data_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('port = 8420\nlisten = "0.0.0.0"\n', "unknown setting 'listen'"),
        ('stop_timeout_s = "soon"\n', "stop_timeout_s: Input should be a valid integer"),
    ],
)
async def test_corral_serve_exits_with_the_configuration_error(
    tmp_path: Path, content: str, said: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text(content)
    result = await corral("serve", "--data-dir", str(data), "--port", "0")
    assert result.code == 2, result
    assert f"corral: the configuration is not valid: {data / 'config.toml'}: {said}" in result.err
    assert "Traceback" not in result.err
    assert not (data / "corral.db").exists()  # refused before anything started


def test_engines_default_to_one_named_local_and_fill_in_their_volume_folders(
    tmp_path: Path,
) -> None:
    plain = Settings(data_dir=tmp_path, docker_host="unix:///srv/one.sock")
    assert [(e.name, e.docker_host, e.volumes_dir) for e in plain.engine_specs] == [
        ("local", "unix:///srv/one.sock", tmp_path / "volumes")
    ]
    two = Settings(
        data_dir=tmp_path,
        engines=[{"name": "a"}, {"name": "b", "docker_host": "unix:///srv/b.sock"}],
        tiers={"pinned": {"engines": ["b"]}},
    )
    assert [(e.name, e.volumes_dir) for e in two.engine_specs] == [
        ("a", tmp_path / "volumes"),
        ("b", tmp_path / "volumes" / "b"),
    ]
    assert two.tier("pinned").engines == ("b",)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"engines": [{"name": "a"}, {"name": "a"}]}, "engine 'a' is listed twice"),
        ({"engines": [{"name": "Bad Name"}]}, "engines[0].name"),
        (
            {"engines": [{"name": "a"}], "tiers": {"free": {"engines": ["b"]}}},
            "tier 'free' names engine 'b', which is not configured",
        ),
        ({"tiers": {"free": {"engines": ["b"]}}}, "the engines are local"),
    ],
)
def test_bad_engines_are_refused_naming_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(**values)
