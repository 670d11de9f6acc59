#!/bin/sh
# Build the offline base image of the playground's DIND image, for machines
# that cannot pull debian:trixie-slim from a registry.
#
#   make-offline-base.sh TAG        e.g. make-offline-base.sh playground-dind-base:trixie
#
# It debootstraps a minimal Debian trixie holding every package of the
# `packages` file (Docker 26, Compose v2, buildx, what the rootless profile
# needs, a friendly shell) and runs setup-base.sh in it, so the Dockerfile
# installs nothing on top of it. About 40 s and 620 MB.
#
# Environment: DEBIAN_MIRROR overrides the mirror (by default, the one apt uses
# on this machine).
set -eu

TAG=${1:?usage: make-offline-base.sh TAG}
SUITE=trixie

# Everything the image needs, from the list the Dockerfile uses too.
HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGES=$(sed -e 's/#.*//' "$HERE/packages" | tr -s ' \n' ' ' | sed -e 's/^ //' -e 's/ $//' | tr ' ' ',')

# The mirror apt uses here: the first http(s) URI of the main archive found in
# either the deb822 (.sources) or the one-line (.list) format.
find_mirror() {
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '
			/^[[:space:]]*#/ { next }
			$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i; next }
			$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }
		' |
		grep -E '/debian/?$' | head -n 1
}
MIRROR=${DEBIAN_MIRROR:-$(find_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || { echo "make-offline-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
command -v docker >/dev/null || { echo "make-offline-base: the docker client is not installed" >&2; exit 1; }

ROOT=$(mktemp -d /tmp/playground-dind-base.XXXXXX)
trap 'rm -rf "$ROOT" "$ROOT.log"' EXIT
trap 'exit 130' INT TERM

echo "Bootstrapping Debian $SUITE from $MIRROR into $ROOT."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
	tail -n 30 "$ROOT.log" >&2
	exit 1
}

# The same tuning and trimming as on the other path (setup-base.sh).
cp "$HERE/setup-base.sh" "$HERE/packages" "$ROOT/tmp/"
chroot "$ROOT" sh /tmp/setup-base.sh /tmp/packages

# Point apt at the same mirror (with security updates) so users can apt-get install.
cat >"$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
SOURCES

rm -rf "$ROOT"/tmp/*
# Files that belong to the build machine, not to every instance.
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/etc/hostname" "$ROOT/etc/resolv.conf"

echo "Importing the root filesystem as $TAG."
tar --numeric-owner -C "$ROOT" -c . | docker import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["/bin/bash"]' \
	- "$TAG"
