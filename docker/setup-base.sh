#!/bin/sh
# Make a Debian root filesystem the base of the playground's instances.
#
#   setup-base.sh PACKAGES_FILE
#
# Run in the Dockerfile (on debian:trixie-slim, where a registry is
# reachable) and by make-offline-base.sh (chrooted in the debootstrapped
# root, where none is). Installs what the packages file lists and is missing,
# then tunes and trims the system the same way on both, so that learners get
# the same Docker wherever the platform was installed. Idempotent: on a base
# that has been through it already it changes nothing.
set -eu

PACKAGES_FILE=${1:?usage: setup-base.sh PACKAGES_FILE}
packages=$(sed -e 's/#.*//' "$PACKAGES_FILE" | tr -s ' \n' ' ')

missing=
for package in $packages; do
	dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
	echo "setup-base: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086 # one argument per package
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The inner dockerd programs its bridge with iptables. Both backends work
# nested on our hosts (a kernel with ip_tables and nf_tables); legacy made the
# inner daemon answer about 50-150 ms sooner than nft, so pin it rather than
# let "auto" pick nft.
update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null

# Keep the image small: caches, docs, man pages and translations are of no use
# in a throw-away playground. The copyright files go too; the licences are in
# the Debian archive the packages came from.
rm -rf /var/cache/apt/archives/*.deb /var/cache/apt/*.bin /var/lib/apt/lists/* \
	/var/log/*.log /var/log/apt/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
	/usr/share/locale/* /usr/share/lintian/*
