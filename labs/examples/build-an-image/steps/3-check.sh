if ! docker ps -a --filter ancestor=hello:1 --filter status=exited --format '{{.Status}}' | grep -q '^Exited (0)'; then
    echo "No container of hello:1 has run to its end yet. Run: docker run --name hello hello:1"
    exit 1
fi
echo "A container of hello:1 ran and ended well."
