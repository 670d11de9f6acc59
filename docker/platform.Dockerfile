# The platform's own image: web (Daphne), worker and beat all run from it (see
# docker/compose.yaml). Not to be confused with docker/Dockerfile, the DIND
# image that instances run. Build from the repository root:
#
#   docker build -f docker/platform.Dockerfile -t playground-platform .
#
# It runs as the unprivileged user "playground" (uid 10001), which still needs
# the host's Docker socket: give the container the socket's group id as a
# supplementary group (compose: group_add: ["$DOCKER_GID"], docker run:
# --group-add "$(stat -c %g /var/run/docker.sock)"). That access is
# root-equivalent on the host all the same; the non-root user only keeps a bug
# in the app from writing to the image's own files.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# xterm.js and its addons for the terminal page, pinned by package-lock.json.
FROM ${NODE_IMAGE} AS node_modules
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PLAYGROUND_VAR_DIR=/var/lib/playground
WORKDIR /app

# losetup and mkfs.ext4 make the bounded disks of instances (worker only);
# iptables and nsenter (util-linux) let the firewall service write, and the
# worker check, the host firewall (scripts/harden-host, copied below with
# the rest of the repository).
RUN apt-get update \
    && apt-get install -y --no-install-recommends e2fsprogs mount iptables util-linux \
    && rm -rf /var/lib/apt/lists/*

# The runtime dependencies: requirements.txt without the test and lint tools.
COPY requirements.txt ./
RUN grep -Ev '^(pytest[a-z-]*|playwright|ruff)([=<>~ \[]|$)' requirements.txt >/tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

RUN groupadd --gid 10001 playground \
    && useradd --uid 10001 --gid playground --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin playground

COPY --from=node_modules /src/node_modules ./node_modules
# .dockerignore keeps .venv, node_modules, var, .git and the like out.
COPY . .

# Static files are collected into the image ($PLAYGROUND_VAR_DIR/static, served
# by WhiteNoise with DEBUG off) and stay root-owned; the var directory itself
# is the user's, for beat's schedule file (and the filesystem broker, which
# only a setup without REDIS_URL uses, and which the settings create at import).
RUN python manage.py collectstatic --no-input -v0 \
    && rm -rf "$PLAYGROUND_VAR_DIR/broker" \
    && chown playground:playground "$PLAYGROUND_VAR_DIR"

USER playground
EXPOSE 8000
# --proxy-headers: behind a TLS reverse proxy, take the client's address and
# scheme from X-Forwarded-For / X-Forwarded-Proto, so Django sees https.
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers", "playground.asgi:application"]
