cd ~/app || exit 1
if [ ! -f compose.yaml ]; then
    echo "There is no ~/app/compose.yaml yet."
    exit 1
fi
if ! config=$(docker compose config 2>&1); then
    echo "Compose cannot read ~/app/compose.yaml:"
    echo "$config"
    exit 1
fi
if ! docker compose config --services | grep -qx web; then
    echo "compose.yaml has no service named 'web'."
    exit 1
fi
if ! grep -q 'context:' <<<"$config"; then
    echo "The service 'web' is not built: add 'build: .'"
    exit 1
fi
if ! grep -Eq 'published: "?8080"?' <<<"$config"; then
    echo "The service 'web' publishes no port 8080: add ports: [\"8080:8080\"]"
    exit 1
fi
echo "compose.yaml builds 'web' and publishes its port 8080."
