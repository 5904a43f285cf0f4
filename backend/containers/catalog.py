"""What create accepts: the configured images (made locally, never pulled) and the roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.docker_service import DockerService
from backend.errors import UnsupportedImage, UnsupportedRole
from backend.settings import ImageSpec, Settings


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    description: str
    packages: tuple[str, ...]
    images: tuple[str, ...]  # empty: every image

    def supports(self, image: ImageSpec) -> bool:
        return not self.images or image.name in self.images or image.reference in self.images

    def as_json(self, all_images: tuple[ImageSpec, ...]) -> dict[str, Any]:
        images = self.images or tuple(i.name for i in all_images)
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "packages": list(self.packages),
            "images": list(images),
        }


BAREBONE = Role("barebone", "Barebone", "The image as it is, with no extra tools.", (), ())


class Catalog:
    def __init__(self, settings: Settings, docker: DockerService) -> None:
        self._settings = settings
        self._docker = docker
        self.roles: dict[str, Role] = {BAREBONE.id: BAREBONE}

    def image(self, name: str) -> ImageSpec:
        spec = self._settings.image(name)
        if spec is None:
            offered = ", ".join(i.name for i in self._settings.images)
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
        role = self.roles.get(role_id)
        if role is None:
            raise UnsupportedRole(
                f"Role {role_id!r} does not exist; choose one of: {', '.join(self.roles)}."
            )
        if not role.supports(image):
            raise UnsupportedRole(
                f"Role {role_id!r} does not work on image {image.name!r}; it supports "
                f"{', '.join(role.images)}."
            )
        return role

    async def images_json(self) -> list[dict[str, Any]]:
        result = []
        for spec in self._settings.images:
            details = await self._docker.image_details(spec.reference)
            result.append(
                {
                    "name": spec.name,
                    "reference": spec.reference,
                    "description": spec.description,
                    "available": details is not None,
                    "size_mb": round(details["Size"] / 1e6) if details else None,
                }
            )
        return result

    def roles_json(self) -> list[dict[str, Any]]:
        return [role.as_json(self._settings.images) for role in self.roles.values()]
