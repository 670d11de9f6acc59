# The build context of this lab, ~/hello: a root file system holding busybox
# and the libraries it needs (none where it is static), as rootfs/.
set -euo pipefail
rootfs=$HOME/hello/rootfs
mkdir -p "$rootfs/bin" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for library in $(ldd /bin/busybox 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
done
for applet in echo sh ls cat; do ln -sf busybox "$rootfs/bin/$applet"; done
