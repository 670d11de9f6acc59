cd ~/app && docker compose up -d --build --quiet-pull 2>&1
for _ in $(seq 1 20); do
    curl -fsS --max-time 2 http://localhost:8080/ >/dev/null 2>&1 && exit 0
    sleep 0.5
done
