"""The apt install both role paths run: the script, and the progress read from its output.

One script serves the image builder (``backend.containers.role_images``: a short-lived build
container under runc, no network) and the in-sandbox fallback (``backend.containers.roles``):
it links the role's .deb files from the host's read-only package cache into a writable archives
folder and runs ``apt-get install --no-download`` with ``APT::Status-Fd``, whose ``pmstatus``
lines name the package being worked on and a percentage. Where the container has a network (a
default route) and the cache lacks something, it falls back to the distribution's mirrors.
It runs as root with HOME=/root in ``/``, never in /home/user (the user's volume).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Where the host's package cache for the image's distribution is mounted, read-only.
PACKAGES_MOUNT = "/var/cache/corral/packages"
ARCHIVES = "/var/cache/corral/archives"
LOG_FILE = "/var/log/corral-role.log"

# $1: the role's folder name in the cache; then the packages (validated by the catalog). fd 3
# carries apt's machine-readable status to the exec's output; apt's own chatter goes to the log.
INSTALL_SCRIPT = rf"""
set -u
role=$1; shift
src={PACKAGES_MOUNT}/$role
work={ARCHIVES}
logf={LOG_FILE}
export DEBIAN_FRONTEND=noninteractive HOME=/root LC_ALL=C.UTF-8
cd /
: >"$logf"
say() {{ printf 'corral:%s\n' "$*"; }}
network_up() {{
  awk 'NR > 1 && $2 == "00000000" {{ found = 1 }} END {{ exit !found }}' /proc/net/route \
    2>/dev/null
}}
rm -rf "$work"
mkdir -p "$work/partial"
count=0
if [ -d "$src" ]; then
  for f in "$src"/*.deb; do
    [ -e "$f" ] || continue
    ln -s "$f" "$work/" && count=$((count + 1))
  done
fi
say "cached $count"
dpkg --configure -a >>"$logf" 2>&1 || true
opts="-y -q --no-install-recommends -o Dir::Cache::archives=$work/ -o APT::Status-Fd=3
  -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
say "stage offline"
apt-get install $opts --no-download -- "$@" 3>&1 >>"$logf" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && network_up; then
  say "stage mirror"
  apt-get update -q >>"$logf" 2>&1 && apt-get install $opts -- "$@" 3>&1 >>"$logf" 2>&1
  rc=$?
fi
rm -rf "$work"
if [ "$rc" -ne 0 ]; then
  grep '^E:' "$logf" | tail -n 3 | sed 's/^/corral:error /'
fi
exit "$rc"
"""

STATUS_RE = re.compile(r"^(pmstatus|dlstatus|pmerror):(.+?):(\d+(?:\.\d+)?):(.*)$")


@dataclass
class InstallProgress:
    """What apt reported last: parsed from ``APT::Status-Fd`` lines and the script's own."""

    package: str | None = None
    percent: float = 0.0
    action: str = ""
    mirror: bool = False
    errors: list[str] | None = None

    def feed(self, line: str) -> bool:
        """Take one line; True when it moved the progress (a package or a percentage)."""
        if line.startswith("corral:"):
            word = line[len("corral:") :]
            if word == "stage mirror":
                self.mirror = True
                self.percent = 0.0
            elif word.startswith("error "):
                self.errors = [*(self.errors or []), word[len("error ") :].removeprefix("E: ")]
            return False
        match = STATUS_RE.match(line)
        if match is None:
            return False
        kind, package, percent, text = match.groups()
        if kind == "pmerror":
            self.errors = [*(self.errors or []), f"{package}: {text}"]
            return False
        value = float(percent)
        if self.mirror:  # downloading is the first 30 %, installing the rest
            value = value * 0.3 if kind == "dlstatus" else 30 + value * 0.7
        if kind == "pmstatus":
            self.package = package.split(":", 1)[0]
            if self.package == "dpkg-exec":
                self.package = None
        self.action = text.strip()
        self.percent = max(self.percent, min(value, 99.0))
        return True
