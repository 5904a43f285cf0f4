"""``corral roles``: build the role images this host offers, and say which are ready.

A role image is the base image with the role's packages installed, built once per host at
native speed (``backend.containers.role_images``); every sandbox of the role starts from it. The
backend builds a missing image by itself the first time it is asked for one; ``prepare`` builds
them ahead (``just images`` runs it for the whole catalog), so nobody waits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from backend.settings import ImageSpec, Settings
from corral.options import DATA_DIR, settings_of

if TYPE_CHECKING:
    from backend.containers.catalog import Role

BAR_WIDTH = 24


class TerminalProgress:
    """A build's progress on a terminal: one line redrawn in place (a bar) when the stream is
    a terminal, otherwise a line per stage and per quarter, so logs stay short."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self._last: tuple[str, int] = ("", -1)
        self._drawn = False

    async def __call__(self, stage: str, message: str, percent: int, **extra: Any) -> None:
        if self.tty:
            filled = BAR_WIDTH * max(0, min(percent, 100)) // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            line = f"{self.label}: [{bar}] {percent:3d}% {message}"
            self.stream.write("\r\x1b[K" + line[:200])
            self._drawn = True
        else:
            step = (stage, percent // 25)
            if step == self._last:
                return
            self._last = step
            self.stream.write(f"{self.label}: {message}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def role_targets(
    settings: Settings, role_ids: list[str], image: str | None
) -> tuple[list[tuple[ImageSpec, Role]], list[str]]:
    """The (base image, role) pairs ``corral roles`` acts on: every image with a known
    distribution that a role with packages supports; and what it refuses."""
    from backend.containers.catalog import catalog_roles

    roles = catalog_roles(settings)
    wanted = role_ids or [r.id for r in roles.values() if r.installs]
    images = [i for i in settings.images if i.distribution]
    if image:
        images = [i for i in images if image in (i.name, i.reference)]
        if not images:
            return [], [f"image {image!r} is not offered or has no known distribution"]
    targets: list[tuple[ImageSpec, Role]] = []
    errors: list[str] = []
    for role_id in wanted:
        role = roles.get(role_id)
        if role is None:
            errors.append(f"role {role_id!r} does not exist; choose from {', '.join(roles)}")
            continue
        if not role.installs:
            print(f"{role.id}: installs nothing (its sandboxes use the image as it is)")
            continue
        matched = [i for i in images if role.supports(i)]
        if not matched and role_ids:
            errors.append(f"role {role_id!r} works on no image with a known distribution")
        targets += [(i, role) for i in matched]
    return targets, errors


def _run_with_images(settings: Settings, work: Callable[[Any, Any], Any]) -> int:
    """Run ``work(docker, images)`` on a Docker client of its own; 1 when the engine is down."""
    from backend.containers.packages import PackageCache
    from backend.containers.role_images import RoleImages
    from backend.docker_service import DockerService
    from backend.errors import DockerUnavailable

    async def main() -> int:
        docker = DockerService(settings.docker_host, 4, settings.docker_timeout_s)
        try:
            result: int = await work(docker, RoleImages(settings, docker, PackageCache(settings)))
            return result
        except DockerUnavailable:
            print(
                "corral: the Docker engine is not reachable (start it: just engine)",
                file=sys.stderr,
            )
            return 1
        finally:
            docker.close()

    return asyncio.run(main())


def cmd_roles_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from backend.containers.catalog import RoleFileError
    from backend.containers.role_images import RoleImageFailed

    try:
        targets, errors = role_targets(settings, args.roles, args.image)
    except RoleFileError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 2
    for error in errors:
        print(f"corral: {error}", file=sys.stderr)

    async def work(docker: Any, images: Any) -> int:
        failed = bool(errors)
        if targets and not await images.usable():
            print(
                f"corral: the engine has no {settings.role_build_runtime!r} runtime to build "
                "role images with; sandboxes will install their roles themselves",
                file=sys.stderr,
            )
            return 1
        for base, role in targets:
            label = f"{role.id} on {base.name}"
            if not await docker.image_exists(base.reference):
                print(f"{label}: skipped, the image is not built (just images)", file=sys.stderr)
                failed = failed or bool(args.roles)
                continue
            bar = TerminalProgress(label)
            try:
                made = await images.ensure(base, role, bar, force=args.force)
            except RoleImageFailed as exc:
                bar.close()
                print(f"{label}: FAILED: {exc}", file=sys.stderr)
                failed = True
                continue
            bar.close()
            how = f"built in {made.seconds:.1f} s" if made.built else "already built"
            print(
                f"{label}: {made.reference}, {made.extra_bytes / 1e6:.0f} MB beyond the base "
                f"({how})"
            )
        return 1 if failed else 0

    return _run_with_images(settings, work)


def cmd_roles_list(args: argparse.Namespace, settings: Settings) -> int:
    from backend.containers.catalog import RoleFileError, catalog_roles
    from backend.containers.role_images import RoleImageFailed

    try:
        roles = catalog_roles(settings)
        targets, _ = role_targets(settings, [], None)
    except RoleFileError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 2

    async def work(docker: Any, images: Any) -> int:
        for role in roles.values():
            states = []
            for base, target_role in targets:
                if target_role.id != role.id:
                    continue
                try:
                    made = await images.find(base, role)
                except RoleImageFailed:
                    made = None
                state = f"ready, {made.extra_bytes / 1e6:.0f} MB" if made else "not built"
                states.append(f"{base.name}: {state}")
            shown = ", ".join(role.images) or "every image"
            packages = " ".join(role.packages) or "-"
            extra = f" [{'; '.join(states)}]" if states else ""
            print(f"{role.id}\t{shown}\t{packages}{extra}")
        return 0

    return _run_with_images(settings, work)


def add_roles_commands(sub: Any) -> None:
    """``corral roles prepare|list``, on the ``corral`` parser's subparsers."""
    roles = sub.add_parser(
        "roles",
        help="the role catalog and its images",
        description="A role is a set of development tools. Each role's packages are installed "
        "once per host into a role image on top of its base image; its sandboxes start from it.",
    )
    roles_sub = roles.add_subparsers(title="roles commands", metavar="COMMAND", required=True)
    prepare = roles_sub.add_parser(
        "prepare",
        help="build role images (with progress)",
        description="Build the image of each named role (default: every role that installs "
        "something) on every image it supports: download its packages into the host's cache "
        "(with apt inside the image's debootstrap root filesystem, which scripts/images.sh "
        "keeps), install them in a short-lived build container, and commit it. An image "
        "already built for the same base image and package list is kept. Needs root and the "
        "engine; safe to run while the backend runs (builds are locked host-wide).",
    )
    prepare.add_argument("roles", nargs="*", metavar="ROLE", help="role ids (default: all)")
    prepare.add_argument("--image", help="only on this base image (default: every image)")
    prepare.add_argument("--force", action="store_true", help="build again even if built")
    DATA_DIR.add(prepare)
    prepare.set_defaults(func=lambda args: cmd_roles_prepare(args, settings_of(args)))
    rlist = roles_sub.add_parser(
        "list",
        help="show the role catalog and which images are ready",
        description="Show every role (built in, and from the operator's roles.toml), the images "
        "it works on, its packages, and on each base image whether its role image is built and "
        "how much disk it adds beyond the base.",
    )
    DATA_DIR.add(rlist)
    rlist.set_defaults(func=lambda args: cmd_roles_list(args, settings_of(args)))
