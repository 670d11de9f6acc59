#!/bin/sh
# Build the offline base image of the playground's DIND image, for machines
# that cannot pull docker:*-dind from a registry.
#
#   make-offline-base.sh TAG        e.g. make-offline-base.sh playground-dind-base:bookworm
#
# It debootstraps a minimal Debian bookworm that already holds everything the
# DIND image needs (dockerd, the client, Compose v1, a friendly shell), so the
# Dockerfile installs nothing on top of it. About 40 s and 500-odd MB.
#
# Environment: DEBIAN_MIRROR overrides the mirror (by default, the one apt uses
# on this machine); SUITE overrides the release (bookworm).
set -eu

TAG=${1:?usage: make-offline-base.sh TAG}
SUITE=${SUITE:-bookworm}

# The packages beyond minbase. docker.io brings containerd, runc and tini
# (docker-init); iptables is what the inner dockerd programs for its bridge.
PACKAGES="docker.io,containerd,runc,tini,iptables,kmod,procps,iproute2,iputils-ping,\
bash,bash-completion,ca-certificates,curl,git,openssh-client,vim-tiny,nano,less,\
docker-compose,xz-utils,pigz,netbase,hostname"

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

# The inner dockerd programs its bridge with iptables. Both backends work
# nested on our hosts (a kernel with ip_tables and nf_tables); legacy made the
# inner daemon answer about 50-150 ms sooner than nft, so pin it rather than
# let "auto" pick nft.
chroot "$ROOT" update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
chroot "$ROOT" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null

# Point apt at the same mirror (with security updates) so users can apt-get install.
cat >"$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
SOURCES

# Keep the image small: caches, docs, man pages and translations are of no use
# in a throw-away playground. The copyright files go too; the licences are in
# the Debian archive the packages came from.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin \
	"$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* \
	"$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
	"$ROOT"/usr/share/locale/* "$ROOT"/usr/share/lintian/* "$ROOT"/tmp/*
# Files that belong to the build machine, not to every instance.
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/etc/hostname" "$ROOT/etc/resolv.conf"

echo "Importing the root filesystem as $TAG."
tar --numeric-owner -C "$ROOT" -c . | docker import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["/bin/bash"]' \
	- "$TAG"
