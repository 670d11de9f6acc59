dockerfile=$HOME/hello/Dockerfile
if [ ! -f "$dockerfile" ]; then
    echo "There is no ~/hello/Dockerfile yet."
    exit 1
fi
if ! grep -qiE '^[[:space:]]*FROM[[:space:]]+scratch[[:space:]]*$' "$dockerfile"; then
    echo "~/hello/Dockerfile does not start FROM scratch."
    exit 1
fi
if ! grep -qiE '^[[:space:]]*COPY[[:space:]]' "$dockerfile"; then
    echo "~/hello/Dockerfile copies nothing into the image: add COPY rootfs/ /"
    exit 1
fi
echo "~/hello/Dockerfile starts from scratch and copies busybox in."
