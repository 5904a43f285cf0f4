#!/usr/bin/env bash
# Build the distribution image corral/debian:bookworm with debootstrap and import it.
# The engine (scripts/engine.sh) must be up. Safe to re-run: an imported image is kept.
#
# The root filesystem stays in $ROOTFS_DIR: the roles feature reuses it as the host-side chroot
# that downloads packages matching the image (sandboxes have no network on these hosts).
set -euo pipefail

log() { printf '[images] %s\n' "$*" >&2; }

IMAGE=corral/debian:bookworm
ROOTFS_DIR=${CORRAL_ROOTFS_DIR:-/var/lib/corral/rootfs/debian-bookworm}
MIRROR=${CORRAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "image $IMAGE already imported"
  exit 0
fi

if [ ! -x "$ROOTFS_DIR/usr/bin/apt-get" ]; then
  log "debootstrap bookworm into $ROOTFS_DIR (about a minute)"
  rm -rf "$ROOTFS_DIR"
  mkdir -p "$(dirname "$ROOTFS_DIR")"
  debootstrap --variant=minbase bookworm "$ROOTFS_DIR.partial" "$MIRROR" >/var/log/corral-debootstrap.log 2>&1 || {
    log "debootstrap failed; see /var/log/corral-debootstrap.log"; tail -n 20 /var/log/corral-debootstrap.log >&2; exit 1; }
  mv "$ROOTFS_DIR.partial" "$ROOTFS_DIR"
fi

log "refreshing package lists inside the image (so offline installs know the packages)"
cp /etc/resolv.conf "$ROOTFS_DIR/etc/resolv.conf"
mountpoint -q "$ROOTFS_DIR/proc" || mount -t proc proc "$ROOTFS_DIR/proc"
trap 'umount "$ROOTFS_DIR/proc" 2>/dev/null || true' EXIT
chroot "$ROOTFS_DIR" apt-get update -qq
umount "$ROOTFS_DIR/proc"
trap - EXIT
mkdir -p "$ROOTFS_DIR/home/user"

log "importing $IMAGE"
tar -C "$ROOTFS_DIR" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
  --exclude=./var/cache/apt/archives/*.deb -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'WORKDIR /home/user' --change 'CMD ["/bin/bash"]' \
      --change 'LABEL corral.image=debian-bookworm' - "$IMAGE" >/dev/null
log "image $IMAGE imported"
