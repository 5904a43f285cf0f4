"""The document ``GET /api/openapi.json`` serves: the declared one (``backend.openapi``) made as
strict as this installation's configuration makes the server.

Some refusals depend on configuration rather than on the declarations: the resources' ranges
(the tiers), the images (the catalog, and which of its images this host has built) and the roles
(the role catalog, each role on the images it supports). The served document writes them in, so
that a request the document allows is one the server takes (within the caller's own tier, which
the document cannot know: ``GET /api/me`` says it) and a request it refuses is one the server
refuses:

- ``memory_mb``, ``cpu_shares``, ``disk_mb``: ``minimum`` and ``maximum`` over every tier;
- ``image``: an ``enum`` of the offered images this host has built (by name or reference);
- ``role``: an ``enum`` of the catalog's roles, and per image (``allOf`` of ``if``/``then``)
  the roles that work on it.

The role catalog is re-read when its file changes, and an image may be built while the backend
runs, so the document is rebuilt when either changed since the last one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from backend.containers.catalog import Catalog, Role
from backend.errors import DockerError, DockerUnavailable, UnsupportedRole
from backend.settings import ImageSpec, Settings

RESOURCES = ("memory_mb", "cpu_shares", "disk_mb")


@dataclass
class ServedDocument:
    settings: Settings
    catalog: Catalog
    _roles: dict[str, Role] | None = None  # the catalog the document was built from
    _images: tuple[str, ...] = ()
    _document: dict[str, Any] | None = None

    async def current(self) -> dict[str, Any]:
        images = await self._built_images()
        names = tuple(spec.name for spec in images)
        roles = self.catalog.roles  # a new dict whenever the catalog is re-read
        if self._document is None or roles is not self._roles or names != self._images:
            self._document = configured_document(self.settings, images, roles, self.catalog)
            self._roles, self._images = roles, names
        return self._document

    async def _built_images(self) -> list[ImageSpec]:
        """The offered images this host has built; every offered one when the engine cannot be
        asked (the create then answers 503 anyway)."""
        try:
            listed = await self.catalog.images_json()
        except (DockerError, DockerUnavailable):
            return list(self.settings.images)
        built = {item["name"] for item in listed if item["available"]}
        return [spec for spec in self.settings.images if spec.name in built]


def configured_document(
    settings: Settings, images: list[ImageSpec], roles: dict[str, Role], catalog: Catalog
) -> dict[str, Any]:
    # Imported here: the declared document walks the route table, whose handlers import the
    # application's state, which holds this module's ServedDocument.
    from backend.openapi import openapi_document

    document = copy.deepcopy(openapi_document())
    schemas = document["components"]["schemas"]
    for name in ("ContainerCreate", "ContainerSettings"):
        properties = schemas[name]["properties"]
        for resource in RESOURCES:
            ranges = [tier.range_for(resource) for tier in settings.tiers.values()]
            properties[resource]["minimum"] = min(r.min for r in ranges)
            properties[resource]["maximum"] = max(r.max for r in ranges)
    create = schemas["ContainerCreate"]
    create["properties"]["image"]["enum"] = _names(images)
    create["properties"]["role"]["enum"] = sorted(roles)
    create["allOf"] = [
        {
            "if": {"properties": {"image": {"enum": _names([spec])}}, "required": ["image"]},
            "then": {"properties": {"role": {"enum": _roles_on(catalog, roles, spec)}}},
        }
        for spec in images
    ]
    return document


def _names(images: list[ImageSpec]) -> list[str]:
    """How create may name these images: by name, or by full reference."""
    return sorted({name for spec in images for name in (spec.name, spec.reference)})


def _roles_on(catalog: Catalog, roles: dict[str, Role], image: ImageSpec) -> list[str]:
    usable = []
    for role_id in sorted(roles):
        try:
            catalog.role(role_id, image)
        except UnsupportedRole:
            continue
        usable.append(role_id)
    return usable
