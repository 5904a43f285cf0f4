#!/usr/bin/env bash
# Install and start a Docker engine with the gVisor (runsc) runtime, then import the default
# image corral/busybox. Safe to re-run: every step checks before it acts.
#
# Why a script and not docs: neither a developer's machine nor CI starts with an engine, and the
# tests run against the real one (see ../shared/ENGINE.md in the project's workspace).
set -euo pipefail

log() { printf '[engine] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "this script installs packages and starts dockerd: run it as root"
    exit 1
  fi
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v runsc >/dev/null || missing+=(runsc)
  [ -x /bin/busybox ] && busybox --list >/dev/null 2>&1 && dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
  command -v losetup >/dev/null || missing+=(mount)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

write_daemon_json() {
  mkdir -p /etc/docker
  local want='{"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--platform=ptrace"]}}, "storage-driver": "overlay2"}'
  if [ ! -f /etc/docker/daemon.json ] || [ "$(cat /etc/docker/daemon.json)" != "$want" ]; then
    log "writing /etc/docker/daemon.json (runsc runtime, overlay2)"
    printf '%s\n' "$want" >/etc/docker/daemon.json
    ENGINE_RESTART=1
  fi
}

engine_up() { docker version >/dev/null 2>&1; }

start_dockerd() {
  if engine_up && [ "${ENGINE_RESTART:-0}" != 1 ]; then
    log "dockerd already running"
    return
  fi
  if engine_up; then
    log "restarting dockerd to load the new configuration"
    kill "$(cat /var/run/docker.pid)" 2>/dev/null || true
    for _ in $(seq 1 100); do engine_up || break; sleep 0.1; done
  fi
  # A stale pidfile from a dead dockerd blocks a new one.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/corral-dockerd.log 2>&1 &
  for _ in $(seq 1 300); do
    if engine_up; then log "dockerd is up"; return; fi
    sleep 0.1
  done
  log "dockerd did not answer within 30 s; see /var/log/corral-dockerd.log"
  tail -n 30 /var/log/corral-dockerd.log >&2 || true
  exit 1
}

check_runsc() {
  if ! docker info --format '{{json .Runtimes}}' | grep -q runsc; then
    log "dockerd runs but has no runsc runtime; check /etc/docker/daemon.json"
    exit 1
  fi
}

import_busybox() {
  if docker image inspect corral/busybox:latest >/dev/null 2>&1; then
    log "image corral/busybox already imported"
    return
  fi
  log "building image corral/busybox"
  local root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/data" "$root/home/user" "$root/etc" "$root/root" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/bin' --change 'WORKDIR /home/user' --change 'CMD ["/bin/sh"]' \
    --change 'LABEL corral.image=busybox' - corral/busybox:latest >/dev/null
  rm -rf "$root"
  log "image corral/busybox imported"
}

main() {
  need_root
  install_packages
  write_daemon_json
  start_dockerd
  check_runsc
  import_busybox
}

main "$@"
