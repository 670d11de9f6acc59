if docker inspect first >/dev/null 2>&1; then
    echo "The container 'first' is still there. Run: docker rm first"
    exit 1
fi
echo "The container 'first' is gone."
