"""Settings for the Docker playground.

Everything is read from the environment through the small helpers below, which
fail loudly on a bad value. With nothing set, the platform runs on embedded
defaults: SQLite, a filesystem Celery broker and an in-memory channel layer, so
the only thing a machine needs is a Docker engine.
"""

import ipaddress
import os
import re
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from playground.clients import parse_trusted_proxies

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PLAYGROUND_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


# --- Core -------------------------------------------------------------------

DEBUG = env_bool("DEBUG", True)
DEVELOPMENT_SECRET_KEY = "insecure-development-key-change-me"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
# The key signs the admin's session cookies and CSRF tokens: a public one in
# production would let anyone forge them, so refuse to start rather than warn.
if not DEBUG and SECRET_KEY in {"", DEVELOPMENT_SECRET_KEY}:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a secret value when DEBUG is off (the built-in development key is public); "
        "e.g. SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "sessions_app",
    "terminals",
    "labs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "playground.static.AsyncWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "playground.middleware.ServiceUnavailableMiddleware",
]

ROOT_URLCONF = "playground.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "playground.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The API's URLs are the seed's (`/sessions`, no trailing slash); both
# spellings are routed explicitly, so CommonMiddleware must not redirect.
APPEND_SLASH = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# xterm.js comes from npm (package.json) and is served by the project itself.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    ("vendor/xterm", NODE_MODULES / "@xterm" / "xterm"),
    ("vendor/addon-fit", NODE_MODULES / "@xterm" / "addon-fit"),
    ("vendor/addon-web-links", NODE_MODULES / "@xterm" / "addon-web-links"),
]
# WhiteNoise serves static files under Daphne; in DEBUG it finds them without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- HTTPS and browsers -----------------------------------------------------

# Other origins (scheme://host[:port]) whose pages may send cookie-authenticated
# writes, e.g. https://play.example.com when the proxy's public origin differs
# from the Host it passes on.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Behind a TLS reverse proxy, X-Forwarded-Proto says whether the client used
# HTTPS. Only trust it when the proxy always sets it: otherwise any client
# could claim HTTPS.
if env_bool("PLAYGROUND_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# In production cookies travel over HTTPS only; set these to false only to try
# the platform over plain HTTP.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
# Browsers remember HSTS for this long and then refuse plain HTTP to the host,
# so it stays 0 until TLS is known to work (then e.g. 31536000, a year).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# No page of the platform is meant to be framed (clickjacking of Close session).
X_FRAME_OPTIONS = "DENY"

# --- Database ---------------------------------------------------------------

DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"))}


def _process_kind() -> str:
    """Which of the platform's processes this is: "worker", "beat" or "web" (anything else)."""
    words = [os.path.basename(word) for word in sys.argv]
    if "celery" in words or "celery/__main__.py" in " ".join(sys.argv):
        return "beat" if "beat" in words else "worker"
    return "web"


# PostgreSQL: a bounded pool of connections per process (psycopg's pool),
# instead of one kept connection per thread that ever served a request,
# which a burst of requests under ASGI multiplies past max_connections. A
# request that finds the pool empty waits up to PLAYGROUND_DB_POOL_TIMEOUT
# seconds, then gets 503 with Retry-After. Size it so that the pools of all
# processes fit PostgreSQL's max_connections (README: "Database").
# A worker's pool has a connection for each of its job threads, its host's
# watch and one to spare: with fewer, a burst that keeps every thread busy
# on a starved CPU has them wait for each other's connections, and a job
# (or the host's look) that waits past the timeout fails and starts over.
PLAYGROUND_WORKER_CONCURRENCY = env_int("PLAYGROUND_WORKER_CONCURRENCY", 20)
DB_POOL_SIZES = {"web": 10, "worker": PLAYGROUND_WORKER_CONCURRENCY + 2, "beat": 2}
PLAYGROUND_DB_POOL_SIZE = env_int("PLAYGROUND_DB_POOL_SIZE", DB_POOL_SIZES[_process_kind()])
PLAYGROUND_DB_POOL_TIMEOUT = env_float("PLAYGROUND_DB_POOL_TIMEOUT", 5)
# A web process runs its requests' sync code (the API's views, the pages) in
# a pool of threads (playground.handler), made as requests need them, up to
# this many; more requests at once wait for a thread. Commands run with
# ?wait=1 (up to PLAYGROUND_EXEC_CONCURRENCY) and uploads hold theirs while
# they last.
PLAYGROUND_WEB_THREADS = env_int("PLAYGROUND_WEB_THREADS", 200)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections, not each thread
    # A connection the server dropped (a restart) is checked and replaced
    # before it is handed out.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": 1,
            "max_size": PLAYGROUND_DB_POOL_SIZE,
            "timeout": PLAYGROUND_DB_POOL_TIMEOUT,
            # The pool retries a lost server with growing pauses (1, 2, 4 s…);
            # it gives up on a round after a few seconds, and the next request
            # starts a new one, so service resumes within seconds of the
            # server's return, not after the last long pause.
            "reconnect_timeout": 5,
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file; wait for the lock instead of
    # failing at once, and let readers run beside the writer.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# --- REST API ---------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["sessions_app.parsers.StrictJSONParser"],
    # Browsers: the Django session cookie (writes then need the CSRF token).
    # API clients: "Authorization: Token <key>" (tokens are made in the admin).
    # (Token first, so that a missing login is answered 401 with WWW-Authenticate.)
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "EXCEPTION_HANDLER": "sessions_app.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI description (/api/schema/, /api/docs/); the annotations live in
# sessions_app/schema.py. Swagger UI's assets come from the sidecar package and
# are served by the platform itself, not a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "Docker playground API",
    "DESCRIPTION": (
        "A self-hosted Docker playground, successor to Play with Docker. A session is a "
        "disposable Linux node with its own Docker engine (Docker-in-Docker), opened with one "
        "request and reached through a browser terminal or a WebSocket; it closes on request, "
        "when its time runs out or when it sits idle. Every path works with or without a "
        "trailing slash. Every error is JSON with `error` (a short reason) and `message`; "
        "a method a path does not offer answers `405` (`method_not_allowed`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Document each route once, in its no-slash form (see sessions_app/schema.py).
    "PREPROCESSING_HOOKS": ["sessions_app.schema.only_canonical_routes"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sessions_app.schema.responses_have_every_field",
        "sessions_app.schema.requests_refuse_what_the_api_refuses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "sessions_app.models.Session.Status",
        "InstanceStatusEnum": "sessions_app.models.Instance.Status",
    },
}

# --- Celery -----------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A task whose worker died unacknowledged is handed out again after this
    # long. Provisioning is bounded by its time limit, well below it.
    _visibility_timeout = env_float("PLAYGROUND_BROKER_VISIBILITY_TIMEOUT", 300)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _visibility_timeout,
        # kombu looks for such tasks every interval × throttle seconds, 100 s
        # by default; look every few seconds instead.
        "unacked_restore_interval": max(1, min(10, _visibility_timeout / 5)),
        "unacked_restore_throttle": 1,
        # Only one worker at a time looks, under a lock in Redis. Should a
        # worker be killed while it holds it (a sweep lasts milliseconds),
        # nobody looks until it expires: kombu's 5 minutes, here 30 s.
        "unacked_mutex_expire": 30,
    }
else:
    # No server needed: kombu's filesystem transport, polled often enough
    # that a task starts within a few tens of milliseconds. Its folders are
    # made, and the transport registered, when the app starts
    # (sessions_app.apps).
    CELERY_BROKER_URL = "playground-filesystem://"  # see playground/broker.py
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.02,
    }
# Workers log through LOGGING (below), so their lines carry the session id too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Sessions end within this long after their expiry.
    "reap-expired-sessions": {
        "task": "sessions_app.tasks.reap_expired_sessions",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    # Docker and the database are compared this often (and at worker start).
    "reconcile": {"task": "sessions_app.tasks.reconcile", "schedule": 60.0, "options": {"expires": 60}},
    # The pool of prepared sessions is refilled this soon after a burst.
    "prepare-sessions": {"task": "sessions_app.tasks.prepare_sessions", "schedule": 5.0, "options": {"expires": 5}},
    # Hosts not seen for PLAYGROUND_HOST_DOWN_AFTER are marked down this soon after.
    "check-hosts": {"task": "sessions_app.tasks.check_hosts", "schedule": 10.0, "options": {"expires": 10}},
}
# A host's work (its instances', its reconciler's, its pool's) goes to its own queue.
CELERY_TASK_ROUTES = ("sessions_app.tasks.route",)

# --- Channels ---------------------------------------------------------------

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis, riding out a Redis outage (playground/channel_layer.py).
            "BACKEND": "playground.channel_layer.ResilientRedisChannelLayer",
            # redis-py 8 gives up on a read after 5 s by default, exactly the
            # time channels-redis blocks waiting for a message.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Limits -----------------------------------------------------------------

# Where the client's address is read (playground/clients.py): the socket's
# peer, or, behind reverse proxies, X-Forwarded-For through that many trusted
# hops ("1" for one nginx in front) or through the proxies of these networks
# ("10.0.0.0/8,127.0.0.1"). Empty: the peer, whatever the header says.
try:
    PLAYGROUND_TRUSTED_PROXIES = parse_trusted_proxies(env_str("PLAYGROUND_TRUSTED_PROXIES", ""))
except ValueError as exc:
    raise ImproperlyConfigured(
        f"PLAYGROUND_TRUSTED_PROXIES must be a number of proxy hops or a comma-separated list of networks: {exc}"
    ) from None
# Sessions one client (a user, or an IP address for anonymous use) may create,
# as "N/sec|min|hour|day"; beyond it 429.
PLAYGROUND_SESSION_RATE = env_str("PLAYGROUND_SESSION_RATE", "10/min")
# Sessions one client may have open.
PLAYGROUND_MAX_SESSIONS_PER_CLIENT = env_int("PLAYGROUND_MAX_SESSIONS_PER_CLIENT", 5)
# Sessions open at once on the Docker host; beyond it new ones get 503.
PLAYGROUND_MAX_SESSIONS = env_int("PLAYGROUND_MAX_SESSIONS", 100)
# Instances being provisioned at once, across all workers; more wait their turn.
PLAYGROUND_MAX_PROVISIONING = env_int("PLAYGROUND_MAX_PROVISIONING", 20)
# Sessions whose instance is started ahead of demand (PreparedSession): that
# many sessions opened at once start in a fraction of a second instead of
# queueing in the engine. Each is an idle running instance (its memory, a
# bridge network) on top of PLAYGROUND_MAX_SESSIONS.
PLAYGROUND_PREPARED_SESSIONS = env_int("PLAYGROUND_PREPARED_SESSIONS", 20)
# Seconds before a workshop (labs.Event) starts from which its template's pool
# also holds a prepared session per free seat, until the workshop ends.
PLAYGROUND_EVENT_PREPARE_AHEAD = env_int("PLAYGROUND_EVENT_PREPARE_AHEAD", 30 * 60)
# Terminal output (bytes a second) a web process gives all the terminals that
# flood at once, shared evenly (terminals/hub.py); one flooding alone is not held back.
# 1 MB/s is some 12,000 full lines a second, more than anyone reads; at 4 MB/s
# the floods' copying (the shims, the engine, this process) took half of a
# 2-core host in bench/load.py, and keystrokes and new instances waited.
PLAYGROUND_TERMINAL_FLOOD_RATE = env_int("PLAYGROUND_TERMINAL_FLOOD_RATE", 1_000_000)
# Seconds between two measures of an instance's stats for the viewers of its
# terminal that show them (terminals/hub.py): one measure a period per session
# and web process, however many viewers look.
PLAYGROUND_STATS_EVERY = env_float("PLAYGROUND_STATS_EVERY", 2.0)
if PLAYGROUND_STATS_EVERY <= 0:
    raise ImproperlyConfigured(f"PLAYGROUND_STATS_EVERY must be above 0 seconds, got {PLAYGROUND_STATS_EVERY}")
# Seconds between two looks at the ports an instance listens on, for the
# badges of its terminal's page (sent only when they change). A look costs
# the kernel about 10 ms on a large host (it walks every TCP socket's table).
PLAYGROUND_PORTS_EVERY = env_float("PLAYGROUND_PORTS_EVERY", 2.0)
if PLAYGROUND_PORTS_EVERY <= 0:
    raise ImproperlyConfigured(f"PLAYGROUND_PORTS_EVERY must be above 0 seconds, got {PLAYGROUND_PORTS_EVERY}")
# Terminal WebSockets one client (address) may have open in one web process; beyond it, close code 4429.
PLAYGROUND_MAX_TERMINALS_PER_CLIENT = env_int("PLAYGROUND_MAX_TERMINALS_PER_CLIENT", 20)
# POST /sessions/{id}/exec: the most output (bytes) one command returns, and
# the longest timeout a client may ask for.
PLAYGROUND_EXEC_OUTPUT_MAX = env_int("PLAYGROUND_EXEC_OUTPUT_MAX", 1_048_576)
PLAYGROUND_EXEC_TIMEOUT_MAX = env_int("PLAYGROUND_EXEC_TIMEOUT_MAX", 600)
# Seconds one of a playground's preload images may take to pull into an
# instance as it starts (before it is handed out).
PLAYGROUND_PRELOAD_TIMEOUT = env_int("PLAYGROUND_PRELOAD_TIMEOUT", 300)
# Commands one web process runs at once (each holds a thread while it runs).
PLAYGROUND_EXEC_CONCURRENCY = env_int("PLAYGROUND_EXEC_CONCURRENCY", 32)
# ... and of them, one session at most this many.
PLAYGROUND_EXEC_PER_SESSION = env_int("PLAYGROUND_EXEC_PER_SESSION", 4)
# A learner's published ports, through the web process's proxy (terminals/proxy.py):
# always at /sessions/{id}/ports/{port}/, and with a domain (wildcard DNS and
# certificate for *.domain) also at {port}-{session id}.{domain}, for apps that
# must live at /.
PLAYGROUND_PORTS_DOMAIN = env_str("PLAYGROUND_PORTS_DOMAIN", "").strip().strip(".").lower()
# Connections one web process keeps open to ports at once (requests beyond wait for one).
PLAYGROUND_PORTS_CONNECTIONS = env_int("PLAYGROUND_PORTS_CONNECTIONS", 256)
# POST /sessions/{id}/files: the most bytes one upload writes (all its files);
# beyond it 413, before anything is written.
PLAYGROUND_UPLOAD_MAX = env_int("PLAYGROUND_UPLOAD_MAX", 100 * 1024 * 1024)
# Whether creating a session needs a logged-in user or an API token.
PLAYGROUND_REQUIRE_LOGIN = env_bool("PLAYGROUND_REQUIRE_LOGIN", False)
# Request bodies are JSON, a command for exec at the largest; beyond 1 MiB, 413.
# (Uploaded files do not count: they are spooled to disk, see PLAYGROUND_UPLOAD_MAX.)
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# The creation rate limit, the prepared sessions' lock and the terminals'
# saved scrollback live in the cache, which all processes must share and
# which must outlive a restart of one of them: Redis when there is one,
# files under var/ otherwise.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": VAR_DIR / "cache"}
    }

# --- Playground instances ---------------------------------------------------

# The Docker engine of the platform's own tools (the Docker SDK's own
# variable), and the address the first Docker host (sessions_app.DockerHost,
# "local") got when it was made; hosts are edited in the admin since.
DOCKER_HOST = env_str("DOCKER_HOST", "unix:///var/run/docker.sock")
# On a host's worker, the address it reaches its own engine by when others
# use another (TLS over the network, ssh): "name=unix:///var/run/docker.sock,…".
PLAYGROUND_ENGINE_URLS = {}
for _entry in env_list("PLAYGROUND_ENGINE_URLS", []):
    _name, _equals, _url = _entry.partition("=")
    if not (_name and _equals and _url):
        raise ImproperlyConfigured(f"PLAYGROUND_ENGINE_URLS is a comma-separated list of name=url, not {_entry!r}")
    PLAYGROUND_ENGINE_URLS[_name.strip()] = _url.strip()
# How long a host's engine may go unanswering before its sessions are shown failed (host_down).
PLAYGROUND_HOST_DOWN_AFTER = env_float("PLAYGROUND_HOST_DOWN_AFTER", 30)
# How often a host's workers look at its engine.
PLAYGROUND_HOST_LOOK_EVERY = env_float("PLAYGROUND_HOST_LOOK_EVERY", 5)
# The backend that runs instances; tests swap in sessions_app.backends.fake.
PLAYGROUND_BACKEND = env_str("PLAYGROUND_BACKEND", "sessions_app.backends.docker.DockerBackend")
PLAYGROUND_DIND_IMAGE = env_str("PLAYGROUND_DIND_IMAGE", "playground-dind:latest")
PLAYGROUND_DIND_BASE_IMAGE = env_str("PLAYGROUND_DIND_BASE_IMAGE", "debian:trixie-slim")
# How instances get the rights a Docker daemon needs.
# - "rootless" (the default): an ordinary container with four capabilities
#   and a seccomp profile (docker/seccomp-rootless.json); its inner dockerd
#   runs rootless, as the learner (uid 1000), and nothing the learner starts
#   runs as root of the container. A learner cannot become root on the host.
# - "runtime": PLAYGROUND_DOCKER_RUNTIME (e.g. sysbox-runc) confines it.
# - "privileged", "capabilities" (every capability but SYS_RESOURCE, no
#   seccomp or AppArmor filter: for hosts that refuse --privileged) and "auto"
#   (the first, else the second): the learner is root in a container with
#   broad rights on the host's kernel, which a learner can turn into root on
#   the host. Only for trusted, logged-in learners: they need
#   PLAYGROUND_REQUIRE_LOGIN and PLAYGROUND_ALLOW_HOST_ROOT=true.
PLAYGROUND_SECURITY_PROFILE = env_choice(
    "PLAYGROUND_SECURITY_PROFILE", "rootless", {"rootless", "runtime", "auto", "privileged", "capabilities"}
)
HOST_ROOT_PROFILES = {"auto", "privileged", "capabilities"}
PLAYGROUND_ALLOW_HOST_ROOT = env_bool("PLAYGROUND_ALLOW_HOST_ROOT", False)
if PLAYGROUND_SECURITY_PROFILE in HOST_ROOT_PROFILES and not (PLAYGROUND_REQUIRE_LOGIN and PLAYGROUND_ALLOW_HOST_ROOT):
    raise ImproperlyConfigured(
        f"PLAYGROUND_SECURITY_PROFILE={PLAYGROUND_SECURITY_PROFILE} lets learners become root on the host: it needs "
        "PLAYGROUND_REQUIRE_LOGIN=true (trusted learners only) and PLAYGROUND_ALLOW_HOST_ROOT=true (the operator "
        "accepts it). The default, rootless, needs neither."
    )
PLAYGROUND_DOCKER_RUNTIME = env_str("PLAYGROUND_DOCKER_RUNTIME", "")
if PLAYGROUND_SECURITY_PROFILE == "runtime" and not PLAYGROUND_DOCKER_RUNTIME:
    raise ImproperlyConfigured("PLAYGROUND_SECURITY_PROFILE=runtime needs PLAYGROUND_DOCKER_RUNTIME")
# What the engine keeps of an instance's output (its terminal): "none", or a
# logging driver ("json-file", "local") with rotation at 1 MB, two files.
PLAYGROUND_INSTANCE_LOG_DRIVER = env_choice("PLAYGROUND_INSTANCE_LOG_DRIVER", "none", {"none", "json-file", "local"})
# Where a playground sets a storage_size, each instance's inner
# /var/lib/docker is a loop-mounted ext4 file of that size (see
# sessions_app/backends/disks.py): "auto" bounds it where the platform runs as
# root beside the engine and warns elsewhere, "on" refuses to start
# instances it cannot bound, "off" never bounds.
PLAYGROUND_BOUND_DISKS = env_choice("PLAYGROUND_BOUND_DISKS", "auto", {"auto", "on", "off"})
PLAYGROUND_DISK_DIR = Path(env_str("PLAYGROUND_DISK_DIR", str(VAR_DIR / "disks")))
# Must be on a tmpfs, so that no link outlives a reboot of the host.
PLAYGROUND_DISK_LINK_DIR = Path(env_str("PLAYGROUND_DISK_LINK_DIR", "/run/playground/disks"))
# Labels what this platform makes in Docker, so that its reconciler never
# touches what another platform sharing the engine made.
PLAYGROUND_PLATFORM_ID = env_str("PLAYGROUND_PLATFORM_ID", "playground")
# Seconds an instance may take from container start to an answering daemon.
PLAYGROUND_DAEMON_READY_TIMEOUT = env_float("PLAYGROUND_DAEMON_READY_TIMEOUT", 60)
# Extra label put on every container, volume and network; tests use it to
# find and remove what they made.
PLAYGROUND_EXTRA_LABELS = dict(item.split("=", 1) for item in env_list("PLAYGROUND_EXTRA_LABELS", []) if "=" in item)

# --- Session networks -------------------------------------------------------

# Each session's bridge network takes a subnet of PLAYGROUND_SESSION_SUBNET_PREFIX
# bits (a /28: a gateway, the instance and room to spare) from this pool, which
# the platform manages itself (sessions_app/subnets.py) and hands to the engine
# as the network's IPAM subnet: the engine's own address pools no longer bound
# how many sessions a host holds. One pool for every engine of the platform.
# It must overlap neither the engines' own pools nor a network the hosts reach.
PLAYGROUND_SESSION_SUBNETS = env_str("PLAYGROUND_SESSION_SUBNETS", "10.128.0.0/12").strip()
PLAYGROUND_SESSION_SUBNET_PREFIX = env_int("PLAYGROUND_SESSION_SUBNET_PREFIX", 28)
try:
    _session_pool = ipaddress.IPv4Network(PLAYGROUND_SESSION_SUBNETS)
except ValueError as exc:
    raise ImproperlyConfigured(
        f"PLAYGROUND_SESSION_SUBNETS must be an IPv4 network such as 10.128.0.0/12, got "
        f"{PLAYGROUND_SESSION_SUBNETS!r}: {exc}"
    ) from None
if not _session_pool.prefixlen <= PLAYGROUND_SESSION_SUBNET_PREFIX <= 29:
    raise ImproperlyConfigured(
        f"PLAYGROUND_SESSION_SUBNET_PREFIX must be between the pool's own ({_session_pool.prefixlen}) and 29 "
        f"(a gateway and an instance), got {PLAYGROUND_SESSION_SUBNET_PREFIX}"
    )

# --- Firewall ---------------------------------------------------------------

# The host firewall that keeps instances off the host and every private
# network (scripts/harden-host writes it; sessions_app/firewall.py checks it).
# "auto": the worker checks it before starting instances, installs it where it
# runs as root beside the engine, and refuses to start instances without it.
# "off": the operator fences the host some other way.
PLAYGROUND_FIREWALL = env_choice("PLAYGROUND_FIREWALL", "auto", {"auto", "off"})
# The network namespace whose firewall counts, when the worker runs in a
# container: /proc/1/ns/net with the host's pid namespace (compose: pid: host).
PLAYGROUND_FIREWALL_NETNS = env_str("PLAYGROUND_FIREWALL_NETNS", "")
# A check's answer is kept this long, so that a burst of instances does not
# run iptables for each, while a rule set removed meanwhile is noticed soon.
PLAYGROUND_FIREWALL_CHECK_SECONDS = env_float("PLAYGROUND_FIREWALL_CHECK_SECONDS", 30)
# What instances may reach all the same, e.g. a registry mirror on the
# network: "10.0.0.5:5000 192.168.1.0/24 [fd00::5]:5000/tcp" (scripts/harden-host).
PLAYGROUND_EGRESS_ALLOW = env_str("PLAYGROUND_EGRESS_ALLOW", "")
# Ports of the host itself that instances may open: "5000/tcp 53/udp".
PLAYGROUND_HOST_ALLOW = env_str("PLAYGROUND_HOST_ALLOW", "")
# The registry mirror every instance's inner Docker pulls through, as
# ADDRESS:PORT seen from the instances (an IPv4 address, or an IPv6 one in
# brackets: the host firewall opens it to instances); empty: none.
# scripts/run and scripts/test start one and set this to the engine's default
# bridge gateway, port 5000 (README: "Registry mirror").
PLAYGROUND_REGISTRY_MIRROR = env_str("PLAYGROUND_REGISTRY_MIRROR", "").strip()
if PLAYGROUND_REGISTRY_MIRROR and not re.fullmatch(
    r"(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}", PLAYGROUND_REGISTRY_MIRROR
):
    raise ImproperlyConfigured(
        f"PLAYGROUND_REGISTRY_MIRROR must be ADDRESS:PORT (an IP address), got {PLAYGROUND_REGISTRY_MIRROR!r}"
    )

# --- Registry mirror --------------------------------------------------------

# The mirror is two registries on one storage (scripts/lib.sh, compose): the
# mirror itself (above), a pull-through cache of PLAYGROUND_REGISTRY_UPSTREAM
# where that is set, a plain store otherwise, and the store, which takes the
# pushes of seed_images (a registry in proxy mode refuses pushes) and serves
# the platform's reads and deletions. Where the host's engine pushes, as
# ADDRESS:PORT: a loopback address, which Docker takes plain HTTP from.
PLAYGROUND_REGISTRY_STORE = env_str("PLAYGROUND_REGISTRY_STORE", "127.0.0.1:5001").strip()
# The store's HTTP API as this process reaches it (compose: http://registry-store:5000).
PLAYGROUND_REGISTRY_API = env_str("PLAYGROUND_REGISTRY_API", "").strip() or f"http://{PLAYGROUND_REGISTRY_STORE}"
# The registries' configuration and storage, where the platform starts them
# (scripts/lib.sh): mirror_gc runs `docker-registry garbage-collect` on the
# store's configuration there and reads when each tag was pushed.
PLAYGROUND_REGISTRY_DIR = Path(env_str("PLAYGROUND_REGISTRY_DIR", str(BASE_DIR / "var" / "registry")))
# mirror_gc removes images, oldest first, until the mirror holds at most this
# many MiB; 0: no cap.
PLAYGROUND_REGISTRY_CAP_MB = env_int("PLAYGROUND_REGISTRY_CAP_MB", 20 * 1024)

# --- Logging ----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"session_id": {"()": "playground.logcontext.SessionIdFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [session=%(session_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["session_id"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Beat sends housekeeping every few seconds, and Celery would write two
    # lines for each; the housekeeping itself logs what it changes. What the
    # console shows: requests, and sessions opened, provisioned, failed and
    # closed (a task that fails is still logged, as an error).
    "loggers": {
        name: {"level": env_str("CELERY_LOG_LEVEL", "WARNING")}
        for name in ("celery.beat", "celery.app.trace", "celery.worker.strategy")
    },
}
