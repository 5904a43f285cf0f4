#!/usr/bin/env bash
# Build the distribution image corral/debian:bookworm with debootstrap and import it.
# The engine (scripts/engine.sh) must be up. Safe to re-run: an imported image is kept.
#
# The root filesystem stays in $ROOTFS_DIR: the roles feature reuses it as the host-side chroot
# that downloads packages matching the image (sandboxes have no network on these hosts). The two
# must hold the same package lists, so the image is labelled with their fingerprint
# (corral.apt-lists: SHA-256 of the InRelease files in name order); the backend refuses to
# install roles when they differ, and this script imports the image again when they do, or
# rebuilds both when the root filesystem is gone.
set -euo pipefail

log() { printf '[images] %s\n' "$*" >&2; }

IMAGE=corral/debian:bookworm
ROOTFS_DIR=${CORRAL_ROOTFS_DIR:-/var/lib/corral/rootfs/debian-bookworm}
LISTS_LABEL=corral.apt-lists
MIRROR=${CORRAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}

fingerprint() {
  (cd "$ROOTFS_DIR/var/lib/apt/lists" && LC_ALL=C ls | grep 'InRelease$' | LC_ALL=C sort \
    | xargs -r cat) | sha256sum | cut -d' ' -f1
}
rootfs_ready() {
  [ -x "$ROOTFS_DIR/usr/bin/apt-get" ] && ls "$ROOTFS_DIR"/var/lib/apt/lists/*InRelease >/dev/null 2>&1
}

refresh_lists=1
if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  if rootfs_ready; then
    recorded=$(docker image inspect -f "{{ index .Config.Labels \"$LISTS_LABEL\" }}" "$IMAGE")
    if [ "$recorded" = "$(fingerprint)" ]; then
      log "image $IMAGE already imported (its package lists match $ROOTFS_DIR)"
      exit 0
    fi
    log "image $IMAGE does not record the package lists of $ROOTFS_DIR: importing it again"
    refresh_lists=0  # keep the lists as they are: the cached role packages were chosen by them
  else
    log "image $IMAGE exists but its root filesystem $ROOTFS_DIR does not: building both"
    rm -rf "$ROOTFS_DIR"
  fi
fi

if [ ! -x "$ROOTFS_DIR/usr/bin/apt-get" ]; then
  log "debootstrap bookworm into $ROOTFS_DIR (about a minute)"
  rm -rf "$ROOTFS_DIR" "$ROOTFS_DIR.partial"
  mkdir -p "$(dirname "$ROOTFS_DIR")"
  debootstrap --variant=minbase bookworm "$ROOTFS_DIR.partial" "$MIRROR" >/var/log/corral-debootstrap.log 2>&1 || {
    log "debootstrap failed; see /var/log/corral-debootstrap.log"; tail -n 20 /var/log/corral-debootstrap.log >&2; exit 1; }
  mv "$ROOTFS_DIR.partial" "$ROOTFS_DIR"
  refresh_lists=1
fi

cp /etc/resolv.conf "$ROOTFS_DIR/etc/resolv.conf"
if [ "$refresh_lists" = 1 ]; then
  log "refreshing package lists inside the image (so offline installs know the packages)"
  mountpoint -q "$ROOTFS_DIR/proc" || mount -t proc proc "$ROOTFS_DIR/proc"
  trap 'umount "$ROOTFS_DIR/proc" 2>/dev/null || true' EXIT
  chroot "$ROOTFS_DIR" apt-get update -qq
  umount "$ROOTFS_DIR/proc"
  trap - EXIT
fi
mkdir -p "$ROOTFS_DIR/home/user" "$ROOTFS_DIR/mnt"
lists=$(fingerprint)

log "importing $IMAGE"
tar -C "$ROOTFS_DIR" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
  --exclude=./var/cache/apt/archives/*.deb -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'WORKDIR /home/user' --change 'CMD ["/bin/bash"]' \
      --change 'LABEL corral.image=debian-bookworm' \
      --change "LABEL $LISTS_LABEL=$lists" - "$IMAGE" >/dev/null
log "image $IMAGE imported (package lists $lists)"
