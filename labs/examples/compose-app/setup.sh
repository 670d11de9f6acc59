# The rest of the app's build context, ~/app/rootfs: busybox and the
# libraries it needs (none where it is static).
set -euo pipefail
rootfs=$HOME/app/rootfs
mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/www"
cp /bin/busybox "$rootfs/bin/busybox"
for library in $(ldd /bin/busybox 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
done
