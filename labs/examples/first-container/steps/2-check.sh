status=$(docker inspect -f '{{.State.Status}}' first 2>/dev/null)
if [ "$status" != exited ]; then
    echo "The container 'first' is ${status:-not there}; it should be stopped (exited). Run: docker stop first"
    exit 1
fi
echo "The container 'first' is stopped."
