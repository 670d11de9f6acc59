if [ "$(docker inspect -f '{{.State.Running}}' first 2>/dev/null)" != true ]; then
    echo "No container named 'first' is running yet. Run: docker run -d --name first busybox:local sleep 3600"
    exit 1
fi
echo "The container 'first' runs."
