docker rm -f hello >/dev/null 2>&1 || true
docker run --name hello hello:1
