"""What a role image is: its name, its labels, and the target a (base image, role) pair asks for.

Identity is what keeps a stale image from being used: the tag carries the base image's ID and
the fingerprint of the role's package list, and the labels repeat them (with the builder's
version), so a rebuilt base image, a changed package list or a changed builder asks for a new
image (``backend.containers.role_images``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

from backend.containers.catalog import Role
from backend.settings import ImageSpec
from corral.shapes import Stage

# Bump when a build would put something else into an image: every role image is then rebuilt.
BUILDER_VERSION = "1"
REPOSITORY_PREFIX = "corral/role-"
BUILD_PREFIX = "corral-role-build-"
LABEL_ROLE_IMAGE = "corral.role-image"
LABEL_ROLE = "corral.role"
LABEL_BASE_ID = "corral.role.base-id"
LABEL_BASE_IMAGE = "corral.role.base-image"
LABEL_PACKAGES = "corral.role.packages"
LABEL_BUILDER = "corral.role.builder"


class Progress(Protocol):
    """Where a build reports what it does: ``container_progress`` events, or a terminal."""

    async def __call__(self, stage: Stage, message: str, percent: int, **extra: Any) -> None: ...


class RoleImageFailed(Exception):
    """A role image could not be built; the message says why (naming the package when apt
    could not find one) and is safe to show a user."""


def packages_fingerprint(role: Role) -> str:
    """SHA-256 of the role's package list, sorted: what the image holds."""
    return hashlib.sha256("\n".join(sorted(set(role.packages))).encode()).hexdigest()


@dataclass(frozen=True)
class RoleImage:
    """A ready role image."""

    role: str
    base: str  # the base image's reference
    reference: str
    id: str
    size_bytes: int
    base_size_bytes: int
    built: bool = False  # this call built it (False: it was there)
    seconds: float = 0.0

    @property
    def extra_bytes(self) -> int:
        """Disk the role adds beyond the base image (its layers are shared)."""
        return max(0, self.size_bytes - self.base_size_bytes)


@dataclass(frozen=True)
class ImageTarget:
    """The role image a (base image, role) pair asks for now."""

    base: ImageSpec
    base_id: str
    base_size: int
    base_cmd: list[str] | None
    base_labels: dict[str, str]
    role: Role

    @property
    def fingerprint(self) -> str:
        return packages_fingerprint(self.role)

    @property
    def repository(self) -> str:
        return f"{REPOSITORY_PREFIX}{self.role.id}"

    @property
    def tag(self) -> str:
        name = self.base.name.lower().rsplit("/", 1)[-1]  # debian:bookworm
        slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:60]
        short_id = self.base_id.removeprefix("sha256:")[:12]
        return f"{slug}-{short_id}-{self.fingerprint[:12]}"

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def build_name(self) -> str:
        return f"{BUILD_PREFIX}{self.role.id}-{self.tag}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_ROLE_IMAGE: "true",
            LABEL_ROLE: self.role.id,
            LABEL_BASE_IMAGE: self.base.reference,
            LABEL_BASE_ID: self.base_id,
            LABEL_PACKAGES: self.fingerprint,
            LABEL_BUILDER: BUILDER_VERSION,
        }

    def made_by_us(self, labels: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.labels.items())

    def image(
        self, details: dict[str, Any], built: bool = False, seconds: float = 0.0
    ) -> RoleImage:
        return RoleImage(
            role=self.role.id,
            base=self.base.reference,
            reference=self.reference,
            id=str(details["Id"]),
            size_bytes=int(details.get("Size") or 0),
            base_size_bytes=self.base_size,
            built=built,
            seconds=seconds,
        )


def labels_of(details: dict[str, Any] | None) -> dict[str, str]:
    return dict(((details or {}).get("Config") or {}).get("Labels") or {})
