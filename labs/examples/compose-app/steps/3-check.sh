cd ~/app || exit 1
if ! containers=$(docker compose ps -a -q 2>&1); then
    echo "Compose cannot read the app in ~/app: $containers"
    exit 1
fi
if [ -n "$containers" ]; then
    echo "The app still has containers. Run: cd ~/app && docker compose down"
    exit 1
fi
echo "The app is down."
