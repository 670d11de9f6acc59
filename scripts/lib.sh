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
        # Every session has a bridge network of its own, whose addresses the
        # platform gives it (PLAYGROUND_SESSION_SUBNETS): the engine's own
        # address pools need no change however many sessions run.
        nohup dockerd >/var/log/dockerd.log 2>&1 &
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

# The registry mirror (README: "Registry mirror"): two registries on one
# storage under $VAR/registry. The mirror listens on the engine's default
# bridge gateway, where instances reach the host (the firewall opens just
# that port to them); it is a pull-through cache of PLAYGROUND_REGISTRY_UPSTREAM
# where that answers, a plain store otherwise. The store listens on loopback:
# seed_images pushes there through the host's engine (Docker speaks plain
# HTTP to loopback registries only, and a registry in proxy mode refuses
# pushes), and the admin and mirror_gc read and delete there.
#   PLAYGROUND_REGISTRY=off       start none (nor set a mirror)
#   PLAYGROUND_REGISTRY_MIRROR    a mirror of your own: start none, use it
#   PLAYGROUND_REGISTRY_UPSTREAM  auto (Docker Hub if it answers), none, or a URL
#   PLAYGROUND_REGISTRY_PORT      the mirror's port (5000)
#   PLAYGROUND_REGISTRY_STORE     the store's loopback ADDRESS:PORT (127.0.0.1:5001)
REGISTRY_HUB=https://registry-1.docker.io
ensure_registry() {
    [ "${PLAYGROUND_REGISTRY:-on}" != off ] || { say "PLAYGROUND_REGISTRY=off: no registry mirror"; return 0; }
    [ -z "${PLAYGROUND_REGISTRY_MIRROR:-}" ] || { say "Instances pull through the mirror at $PLAYGROUND_REGISTRY_MIRROR"; return 0; }
    if ! command -v docker-registry >/dev/null; then
        can_apt || die "docker-registry is missing, for the registry mirror: install Debian's docker-registry package (or run as root), or set PLAYGROUND_REGISTRY=off"
        apt_install docker-registry
    fi
    local gateway dir=$VAR/registry upstream
    gateway=$(bridge_gateway)
    [ -n "$gateway" ] || die "the engine has no default bridge network, so no address where instances reach a registry on the host: set PLAYGROUND_REGISTRY_MIRROR to a mirror of your own, or PLAYGROUND_REGISTRY=off"
    export PLAYGROUND_REGISTRY_MIRROR="$gateway:${PLAYGROUND_REGISTRY_PORT:-5000}"
    export PLAYGROUND_REGISTRY_STORE=${PLAYGROUND_REGISTRY_STORE:-127.0.0.1:5001}
    export PLAYGROUND_REGISTRY_DIR=$dir
    upstream=${PLAYGROUND_REGISTRY_UPSTREAM:-auto}
    if [ "$upstream" = auto ]; then
        # Docker Hub answers 401 to an anonymous /v2/; no answer at all: not in
        # reach, and a registry in proxy mode would not even start (it panics).
        upstream=none
        "$VENV/bin/python" -c "import urllib.request as u, urllib.error as e, sys
try: u.urlopen('$REGISTRY_HUB/v2/', timeout=5)
except e.HTTPError: pass
except Exception: sys.exit(1)" 2>/dev/null && upstream=$REGISTRY_HUB
    fi
    [ "$upstream" != none ] || upstream=""
    mkdir -p "$dir/storage"
    registry_config "$PLAYGROUND_REGISTRY_STORE" store >"$dir/store.yml.new"
    registry_config "$PLAYGROUND_REGISTRY_MIRROR" mirror "$upstream" >"$dir/mirror.yml.new"
    start_registry store
    start_registry mirror
    say "Registry mirror at $PLAYGROUND_REGISTRY_MIRROR (${upstream:+a cache of $upstream}${upstream:-a plain store: Docker Hub is not in reach}), seeded through $PLAYGROUND_REGISTRY_STORE"
}

# The host's address on the engine's default bridge (docker0): the IPAM
# gateway where one is configured, else the bridge interface's own address.
bridge_gateway() {
    local gateway interface
    gateway=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' 2>/dev/null | awk '{print $1}')
    if [ -z "$gateway" ]; then
        interface=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null)
        gateway=$(ip -4 -o addr show "${interface:-docker0}" 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4; exit}')
    fi
    echo "$gateway"
}

# A Distribution 2.8 configuration listening on $1, storage under $VAR/registry.
# The store ($2 = store) may delete (mirror_gc). The mirror ($2 = mirror) is
# read-only: instances reach it, and none may push an image for the others
# to pull, nor delete one (a cache still fills its storage with what it
# fetches: seen here); a pull-through cache of $3 if given.
registry_config() {
    local access="  delete:
    enabled: true"
    [ "$2" = store ] || access="  maintenance:
    readonly:
      enabled: true"
    cat <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $VAR/registry/storage
$access
http:
  addr: $1
YAML
    [ -z "${3:-}" ] || printf 'proxy:\n  remoteurl: %s\n' "$3"
}

# Start (or, when its configuration changed, restart) one of the two registries.
start_registry() {
    local name=$1 dir=$VAR/registry pid
    pid=$(cat "$dir/$name.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && cmp -s "$dir/$name.yml" "$dir/$name.yml.new"; then
        rm -f "$dir/$name.yml.new"
        return 0
    fi
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    mv "$dir/$name.yml.new" "$dir/$name.yml"
    nohup docker-registry serve "$dir/$name.yml" >>"$dir/$name.log" 2>&1 </dev/null &
    echo $! >"$dir/$name.pid"
    local address
    address=$(awk '$1 == "addr:" {print $2}' "$dir/$name.yml")
    for _ in $(seq 1 40); do
        # (Its own answer: another registry on that address would answer too.)
        kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break
        "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://$address/v2/', timeout=1)" 2>/dev/null && return 0
        sleep 0.25
    done
    die "the registry ($name) did not start on $address; see $dir/$name.log"
}
