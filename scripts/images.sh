#!/usr/bin/env bash
# Build the distribution image corral/debian:bookworm with debootstrap and import it.
# The engine (scripts/engine.sh) must be up. Safe to re-run: an image that is up to date is kept.
#
# The root filesystem stays in $ROOTFS_DIR: the roles feature reuses it as the host-side chroot
# that downloads packages matching the image (sandboxes have no network on these hosts). The two
# must hold the same package lists, so the image is labelled with their fingerprint
# (corral.apt-lists: SHA-256 of the InRelease files in name order); the backend refuses to
# install roles when they differ, and this script imports the image again when they do, or
# rebuilds both when the root filesystem is gone.
#
# What makes the image a usable development machine under this host's gVisor is recorded in the
# corral.base label (a fingerprint of this recipe): procps (ps, top), and a preloaded statx shim
# (scripts/statx-noautomount.c: this runsc rejects statx with AT_NO_AUTOMOUNT, which breaks
# `ls -l`, `stat`, `cp -a`). An image with another corral.base is imported again.
set -euo pipefail

log() { printf '[images] %s\n' "$*" >&2; }

IMAGE=corral/debian:bookworm
ROOTFS_DIR=${CORRAL_ROOTFS_DIR:-/var/lib/corral/rootfs/debian-bookworm}
LISTS_LABEL=corral.apt-lists
BASE_LABEL=corral.base
MIRROR=${CORRAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
EXTRA_PACKAGES=(procps)
SHIM_SRC="$(cd "$(dirname "$0")" && pwd)/statx-noautomount.c"
SHIM_PATH=/usr/local/lib/corral/libstatx-noautomount.so
BASE_VERSION=$({ cat "$SHIM_SRC"; echo "extra: ${EXTRA_PACKAGES[*]}"; echo "preload: $SHIM_PATH"; } \
  | sha256sum | cut -c1-16)

fingerprint() {
  (cd "$ROOTFS_DIR/var/lib/apt/lists" && LC_ALL=C ls | grep 'InRelease$' | LC_ALL=C sort \
    | xargs -r cat) | sha256sum | cut -d' ' -f1
}
rootfs_ready() {
  [ -x "$ROOTFS_DIR/usr/bin/apt-get" ] && ls "$ROOTFS_DIR"/var/lib/apt/lists/*InRelease >/dev/null 2>&1
}
image_label() {
  docker image inspect -f "{{ index .Config.Labels \"$1\" }}" "$IMAGE"
}
in_chroot() {
  mountpoint -q "$ROOTFS_DIR/proc" || mount -t proc proc "$ROOTFS_DIR/proc"
  trap 'umount "$ROOTFS_DIR/proc" 2>/dev/null || true' EXIT
  chroot "$ROOTFS_DIR" "$@"
  umount "$ROOTFS_DIR/proc"
  trap - EXIT
}

refresh_lists=1
if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  if rootfs_ready; then
    if [ "$(image_label "$LISTS_LABEL")" = "$(fingerprint)" ] \
      && [ "$(image_label "$BASE_LABEL")" = "$BASE_VERSION" ]; then
      log "image $IMAGE already imported (up to date with $ROOTFS_DIR)"
      exit 0
    fi
    log "image $IMAGE is older than its recipe or its root filesystem: importing it again"
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
  include=$(IFS=,; echo "${EXTRA_PACKAGES[*]}")
  debootstrap --variant=minbase --include="$include" bookworm "$ROOTFS_DIR.partial" "$MIRROR" \
    >/var/log/corral-debootstrap.log 2>&1 || {
    log "debootstrap failed; see /var/log/corral-debootstrap.log"; tail -n 20 /var/log/corral-debootstrap.log >&2; exit 1; }
  mv "$ROOTFS_DIR.partial" "$ROOTFS_DIR"
  refresh_lists=1
fi

cp /etc/resolv.conf "$ROOTFS_DIR/etc/resolv.conf"
missing=()
for package in "${EXTRA_PACKAGES[@]}"; do
  chroot "$ROOTFS_DIR" dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "$refresh_lists" = 1 ] || [ "${#missing[@]}" -gt 0 ]; then
  log "refreshing package lists inside the image (so offline installs know the packages)"
  in_chroot apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} into the root filesystem"
  in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Use-Pty=0 "${missing[@]}" >/var/log/corral-images.log 2>&1 || {
    log "installing ${missing[*]} failed; see /var/log/corral-images.log"; exit 1; }
  in_chroot apt-get clean
fi

if ! command -v gcc >/dev/null || [ ! -f /usr/include/stdio.h ]; then
  log "installing gcc to build the statx shim"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi
mkdir -p "$ROOTFS_DIR$(dirname "$SHIM_PATH")"
gcc -shared -fPIC -O2 -Wall -Werror -o "$ROOTFS_DIR$SHIM_PATH" "$SHIM_SRC"
echo "$SHIM_PATH" >"$ROOTFS_DIR/etc/ld.so.preload"
chroot "$ROOTFS_DIR" ls -l / >/dev/null  # the shim loads and works

mkdir -p "$ROOTFS_DIR/home/user" "$ROOTFS_DIR/mnt"
lists=$(fingerprint)

log "importing $IMAGE"
previous=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
tar -C "$ROOTFS_DIR" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
  --exclude=./var/cache/apt/archives/*.deb -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'WORKDIR /home/user' --change 'CMD ["/bin/bash"]' \
      --change 'LABEL corral.image=debian-bookworm' \
      --change "LABEL $BASE_LABEL=$BASE_VERSION" \
      --change "LABEL $LISTS_LABEL=$lists" - "$IMAGE" >/dev/null
# The image it replaces goes, unless a container still uses it (then it stays until removed).
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
log "image $IMAGE imported (package lists $lists, recipe $BASE_VERSION)"
