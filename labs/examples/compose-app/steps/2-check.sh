if ! page=$(curl -fsS --max-time 5 http://localhost:8080/ 2>&1); then
    echo "Nothing answers on http://localhost:8080/ yet ($page). Run: cd ~/app && docker compose up -d --build"
    exit 1
fi
if ! grep -q 'Hello from Compose' <<<"$page"; then
    echo "http://localhost:8080/ answers, but not with the app's page."
    exit 1
fi
echo "The app answers on port 8080."
