cat > ~/app/compose.yaml <<'YAML'
services:
  web:
    build: .
    ports:
      - "8080:8080"
YAML
