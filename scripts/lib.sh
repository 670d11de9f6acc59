# Shared steps of scripts/run and scripts/test. Each step checks first and
# only installs or starts what is missing, so running a script twice is cheap.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR="$ROOT/var"
VENV="$ROOT/.venv"
PYTHON_BIN=${PYTHON_BIN:-python3.11}
mkdir -p "$VAR"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

APT_UPDATED=""
apt_install() {
    # Installs the Debian packages that are not installed yet.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    can_apt || die "missing packages: ${missing[*]} (install them, or run as root on Debian/Ubuntu)"
    say "Installing ${missing[*]}"
    if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
    command -v "$PYTHON_BIN" >/dev/null || PYTHON_BIN=python3
    if [ ! -x "$VENV/bin/python" ]; then
        say "Creating the virtual environment in .venv"
        "$PYTHON_BIN" -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha"
    local want
    want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "Installing Python dependencies"
        "$VENV/bin/pip" install -q --upgrade pip >/dev/null
        "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt"
        echo "$want" >"$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}

ensure_node_modules() {
    # xterm.js and its addons, pinned in package-lock.json, served by Django.
    command -v npm >/dev/null || apt_install nodejs npm
    local stamp="$ROOT/node_modules/.package-lock.sha"
    local want
    want=$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "Installing the browser terminal (npm ci)"
        (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
    fi
}

docker_answers() { timeout 5 docker info >/dev/null 2>&1; }

ensure_docker() {
    command -v docker >/dev/null && docker_answers && return 0
    if ! command -v dockerd >/dev/null; then
        can_apt || die "no Docker engine answers; install and start Docker (https://docs.docker.com/engine/install/), then run this again"
        apt_install docker.io
    fi
    if ! docker_answers; then
        [ "$(id -u)" = 0 ] || die "a Docker engine is installed but not running; start it (e.g. 'sudo systemctl start docker')"
        say "Starting the Docker engine"
        # Every session has a bridge network of its own; the engine's default
        # address pools hold only about 30 of them, this one holds 256.
        nohup dockerd --default-address-pool base=10.201.0.0/16,size=24 >/var/log/dockerd.log 2>&1 &
        for _ in $(seq 1 60); do docker_answers && break; sleep 0.5; done
        docker_answers || die "dockerd did not start; see /var/log/dockerd.log"
    fi
}

ensure_disk_tools() {
    # losetup and mkfs.ext4 make the size-bounded disks of instances (README:
    # "Disk"); only root can use them, so only root needs them.
    [ "$(id -u)" = 0 ] || return 0
    command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null && return 0
    apt_install mount e2fsprogs
}

harden_host() {
    # Firewall the host off from the instances (scripts/harden-host says how).
    # The worker checks the rules before it starts an instance and refuses
    # without them, unless PLAYGROUND_FIREWALL=off says the operator keeps them.
    if [ "${PLAYGROUND_FIREWALL:-auto}" = off ]; then
        say "PLAYGROUND_FIREWALL=off: the host firewall for instances is yours to keep"
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "not root, so the host firewall that fences instances in can be neither installed nor checked, and the worker would refuse to start instances. Run as root, or run 'sudo scripts/harden-host' (again after every boot) and then PLAYGROUND_FIREWALL=off $0"
    "$ROOT/scripts/harden-host"
}

refuse_public_debug() {
    # Django's debug pages show settings and tracebacks to whoever can reach
    # them: with DEBUG on (the default), serve on a loopback address only.
    local bind=${PLAYGROUND_BIND:-127.0.0.1}
    case ${DEBUG:-} in [Ff][Aa][Ll][Ss][Ee] | [Nn][Oo] | [Oo][Ff][Ff] | 0) return 0 ;; esac
    [[ $bind =~ ^(127\.[0-9]+\.[0-9]+\.[0-9]+|::1|\[::1\]|localhost)$ ]] && return 0
    die "DEBUG is on (the default), and PLAYGROUND_BIND=$bind is not a loopback address: the debug pages would show the platform's settings and tracebacks to anyone who reaches it. Serve on 127.0.0.1 (behind a reverse proxy), or set DEBUG=false and a SECRET_KEY."
}

ensure_dind_image() {
    # debootstrap makes the offline base where no registry can be reached.
    command -v debootstrap >/dev/null || { can_apt && apt_install debootstrap; } || true
    "$VENV/bin/python" "$ROOT/manage.py" build_dind_image
}

PG_PORT=${PG_PORT:-5432}
ensure_postgres() {
    apt_install postgresql
    local cluster
    cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}')
    [ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters)"
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster status >/dev/null 2>&1 || { say "Starting PostgreSQL"; pg_ctlcluster $cluster start; }
    for _ in $(seq 1 40); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.25; done
    su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='playground'\"" | grep -q 1 ||
        su postgres -c "psql -qc \"CREATE ROLE playground LOGIN CREATEDB PASSWORD 'playground'\""
    su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='playground'\"" | grep -q 1 ||
        su postgres -c "createdb -O playground playground"
    export DATABASE_URL="postgres://playground:playground@127.0.0.1:$PG_PORT/playground"
}

REDIS_PORT=${REDIS_PORT:-6390}
ensure_redis() {
    apt_install redis-server
    if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        say "Starting Redis on port $REDIS_PORT"
        mkdir -p "$VAR/redis"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
            --dir "$VAR/redis" --logfile "$VAR/redis/redis.log" --pidfile "$VAR/redis/redis.pid"
        for _ in $(seq 1 40); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.25; done
    fi
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/1"
}

ensure_chromium() {
    # The browser tests drive Debian's Chromium through Playwright.
    apt_install chromium fonts-dejavu-core
}
