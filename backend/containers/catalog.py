"""What create accepts: the configured images (made locally, never pulled) and the roles."""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from backend.docker_service import DockerService
from backend.errors import UnsupportedImage, UnsupportedRole
from backend.settings import ImageSpec, Settings
from corral import shapes

log = logging.getLogger(__name__)


ROLE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# Debian package names (policy 5.6.1), optionally with an architecture qualifier. Checked here so
# that nothing a role file says can reach apt as an option or a shell word.
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?$")
ROLE_FIELDS = frozenset({"name", "description", "packages", "images", "enabled"})
ALL_IMAGES = "*"


class RoleFileError(ValueError):
    """A role file that cannot be used; the message names the file and the fault."""


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    description: str
    packages: tuple[str, ...]
    images: tuple[str, ...]  # empty: every image

    @property
    def installs(self) -> bool:
        """Whether the role has anything to install (barebone has not)."""
        return bool(self.packages)

    def supports(self, image: ImageSpec) -> bool:
        return not self.images or image.name in self.images or image.reference in self.images

    def as_json(self, all_images: tuple[ImageSpec, ...]) -> shapes.Role:
        images = self.images or tuple(i.name for i in all_images)
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "packages": list(self.packages),
            "images": list(images),
        }


def _strings(value: Any, what: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RoleFileError(f"{source}: {what} must be a list of strings")
    return tuple(value)


def parse_roles(raw: Mapping[str, Any], source: str, base: Mapping[str, Role]) -> dict[str, Role]:
    """``base`` with the ``[roles.<id>]`` tables of one file merged over it, field by field."""
    table = raw.get("roles", {})
    if not isinstance(table, dict):
        raise RoleFileError(f"{source}: [roles] must be a table of [roles.<id>] tables")
    unknown_top = set(raw) - {"roles"}
    if unknown_top:
        raise RoleFileError(f"{source}: unknown top-level key(s) {sorted(unknown_top)}")
    result = dict(base)
    for role_id, spec in table.items():
        where = f"{source}: role {role_id!r}"
        if not ROLE_ID_RE.fullmatch(role_id):
            raise RoleFileError(f"{where}: ids are 1-32 lowercase letters, digits and hyphens")
        if not isinstance(spec, dict):
            raise RoleFileError(f"{where} must be a table")
        unknown = set(spec) - ROLE_FIELDS
        if unknown:
            raise RoleFileError(f"{where}: unknown field(s) {sorted(unknown)}")
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RoleFileError(f"{where}: enabled must be true or false")
        if not enabled:
            result.pop(role_id, None)
            continue
        current = result.get(role_id)
        if current is None and "packages" not in spec:
            raise RoleFileError(f"{where}: a new role needs packages (an empty list is allowed)")
        if "packages" in spec:
            packages = _strings(spec["packages"], "packages", where)
        else:
            assert current is not None
            packages = current.packages
        for package in packages:
            if not PACKAGE_RE.fullmatch(package):
                raise RoleFileError(f"{where}: {package!r} is not a valid package name")
        if "images" in spec:
            images = _strings(spec["images"], "images", where)
            images = () if ALL_IMAGES in images else images
        else:
            images = current.images if current else ()
        name = spec.get("name", current.name if current else role_id)
        description = spec.get("description", current.description if current else "")
        if not isinstance(name, str) or not isinstance(description, str):
            raise RoleFileError(f"{where}: name and description must be strings")
        result[role_id] = Role(role_id, name, description, packages, images)
    return result


def load_role_file(path: Path | Traversable, base: Mapping[str, Role]) -> dict[str, Role]:
    source = getattr(path, "name", str(path))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RoleFileError(f"{source}: not valid TOML ({exc})") from exc
    return parse_roles(raw, str(path) if isinstance(path, Path) else source, base)


def builtin_roles() -> dict[str, Role]:
    """The catalog shipped with the backend (``backend/data/roles.toml``, package data)."""
    roles = load_role_file(resources.files("backend") / "data" / "roles.toml", {})
    if "barebone" not in roles:
        raise RoleFileError("backend/data/roles.toml must define the barebone role")
    return roles


def catalog_roles(settings: Settings) -> dict[str, Role]:
    """The built-in roles with the operator's file (if any) merged over them."""
    path = settings.operator_roles_path
    builtin = builtin_roles()
    if not path.is_file():
        return builtin
    roles = load_role_file(path, builtin)
    if "barebone" not in roles:
        raise RoleFileError(f"{path}: the barebone role cannot be removed")
    return roles


class Catalog:
    def __init__(self, settings: Settings, docker: DockerService) -> None:
        self._settings = settings
        self._docker = docker
        self._operator_path = settings.operator_roles_path
        self._operator_stamp: tuple[int, int] | None = None
        # At start-up a broken operator file stops the backend (RoleFileError), so the mistake is
        # seen at once; once running, a broken edit is logged and the last good catalog stays.
        self._roles = self._load()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._operator_path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _load(self) -> dict[str, Role]:
        stamp = self._stamp()
        roles = catalog_roles(self._settings)
        self._operator_stamp = stamp
        return roles

    @property
    def roles(self) -> dict[str, Role]:
        """The current catalog; the operator's file is read again when it changed (one stat)."""
        if self._stamp() != self._operator_stamp:
            try:
                self._roles = self._load()
                log.info("role catalog reloaded from %s", self._operator_path)
            except (RoleFileError, OSError) as exc:
                self._operator_stamp = self._stamp()
                log.error("keeping the previous role catalog: %s", exc)
        return self._roles

    def find_role(self, role_id: str) -> Role | None:
        return self.roles.get(role_id)

    def image(self, name: str) -> ImageSpec:
        spec = self._settings.image(name)
        if spec is None:
            offered = ", ".join(
                [i.name for i in self._settings.images]
                + [a for a in sorted(self._settings.image_aliases) if self._settings.image(a)]
            )
            raise UnsupportedImage(f"Image {name!r} is not offered here; choose one of: {offered}.")
        return spec

    async def require_available(self, spec: ImageSpec) -> None:
        """Refuse an offered image that this host has not built (it is never pulled)."""
        if not await self._docker.image_exists(spec.reference):
            raise UnsupportedImage(
                f"Image {spec.name!r} is not built on this host; an operator can build it with "
                "'just images'."
            )

    def role(self, role_id: str, image: ImageSpec) -> Role:
        """The role ``role_id`` if it works on ``image``; otherwise 400 ``unsupported role``
        with the reason."""
        roles = self.roles
        role = roles.get(role_id)
        if role is None:
            raise UnsupportedRole(
                f"Role {role_id!r} does not exist; choose one of: {', '.join(roles)}."
            )
        if not role.supports(image):
            raise UnsupportedRole(
                f"Role {role_id!r} does not work on image {image.name!r}; it supports "
                f"{', '.join(role.images)}."
            )
        if role.installs and not image.distribution:
            raise UnsupportedRole(
                f"Role {role_id!r} installs packages, and image {image.name!r} has no known "
                "distribution to download them for."
            )
        return role

    async def images_json(self) -> list[shapes.Image]:
        result: list[shapes.Image] = []
        for spec in self._settings.images:
            details = await self._docker.image_details(spec.reference)
            result.append(
                {
                    "name": spec.name,
                    "reference": spec.reference,
                    "description": spec.description,
                    "available": details is not None,
                    "size_mb": round(details["Size"] / 1e6) if details else None,
                    "aliases": self._settings.aliases_of(spec),
                }
            )
        return result

    def roles_json(self) -> list[shapes.Role]:
        return [role.as_json(self._settings.images) for role in self.roles.values()]
