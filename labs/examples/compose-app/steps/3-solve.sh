cd ~/app && docker compose down
