docker rm -f first >/dev/null 2>&1 || true
docker run -d --name first busybox:local sleep 3600
