"""Production settings: DEBUG off refuses the development key and turns on the browser protections.

Settings are read once, at import, so each case imports them in a fresh
Python process with its own environment.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs in the child: set Django up, then report a few settings and the headers
# of a real response (/healthz touches no database).
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
plain = Client().get("/healthz")
secure = Client().get("/healthz", headers={"X-Forwarded-Proto": "https"})
print(json.dumps({
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
    "csrf_trusted_origins": settings.CSRF_TRUSTED_ORIGINS,
    "status": plain.status_code,
    "headers": dict(plain.headers),
    "secure_headers": dict(secure.headers),
}))
"""


def run_settings(tmp_path, probe: str = PROBE, **env: str) -> subprocess.CompletedProcess:
    unset = {"SECRET_KEY", "DEBUG", "PLAYGROUND_DB_POOL_SIZE", "PLAYGROUND_WORKER_CONCURRENCY"}
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(
        DJANGO_SETTINGS_MODULE="playground.settings",
        PLAYGROUND_VAR_DIR=str(tmp_path),
        ALLOWED_HOSTS="testserver",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def probe(tmp_path, **env: str) -> dict:
    result = run_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_refuses_to_start_without_debug_on_the_development_key(tmp_path):
    result = run_settings(tmp_path, DEBUG="false")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set to a secret value when DEBUG is off" in result.stderr


@pytest.mark.parametrize("key", ["", "insecure-development-key-change-me"])
def test_it_refuses_an_empty_or_development_key_set_explicitly(tmp_path, key):
    result = run_settings(tmp_path, DEBUG="false", SECRET_KEY=key)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_it_still_starts_in_debug_on_the_development_key(tmp_path):
    settings = probe(tmp_path, DEBUG="true")

    assert settings["status"] == 200
    # Local development runs over plain HTTP: secure-only cookies would break the admin.
    assert settings["session_cookie_secure"] is False


def test_it_starts_without_debug_on_a_real_key_with_secure_cookies_and_headers(tmp_path):
    settings = probe(tmp_path, DEBUG="false", SECRET_KEY="a-real-secret-" + "x" * 40)

    assert settings["status"] == 200
    assert settings["session_cookie_secure"] is True
    assert settings["csrf_cookie_secure"] is True
    assert settings["headers"]["X-Content-Type-Options"] == "nosniff"
    assert settings["headers"]["X-Frame-Options"] == "DENY"
    assert settings["headers"]["Referrer-Policy"] == "same-origin"
    # HSTS is opt-in, and X-Forwarded-Proto is not trusted unless told to.
    assert "Strict-Transport-Security" not in settings["secure_headers"]


def test_it_lets_cookies_be_sent_over_plain_http_when_told(tmp_path):
    settings = probe(
        tmp_path, DEBUG="false", SECRET_KEY="k" * 50, SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false"
    )

    assert settings["session_cookie_secure"] is False
    assert settings["csrf_cookie_secure"] is False


def test_it_trusts_the_proxys_https_and_sends_hsts_behind_a_proxy(tmp_path):
    settings = probe(
        tmp_path,
        DEBUG="false",
        SECRET_KEY="k" * 50,
        PLAYGROUND_BEHIND_PROXY="true",
        SECURE_HSTS_SECONDS="3600",
        CSRF_TRUSTED_ORIGINS="https://play.example.com, https://other.example.com",
    )

    assert settings["secure_headers"]["Strict-Transport-Security"] == "max-age=3600"
    # Only a request the proxy marked as HTTPS gets it.
    assert "Strict-Transport-Security" not in settings["headers"]
    assert settings["csrf_trusted_origins"] == ["https://play.example.com", "https://other.example.com"]


def test_it_refuses_a_malformed_proxy_flag(tmp_path):
    result = run_settings(tmp_path, DEBUG="false", SECRET_KEY="k" * 50, PLAYGROUND_BEHIND_PROXY="maybe")

    assert result.returncode != 0
    assert "PLAYGROUND_BEHIND_PROXY must be a boolean" in result.stderr


def test_it_runs_instances_rootless_by_default(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.PLAYGROUND_SECURITY_PROFILE)",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PLAYGROUND_")}
        | {"DJANGO_SETTINGS_MODULE": "playground.settings", "PLAYGROUND_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rootless"


@pytest.mark.parametrize("profile", ["privileged", "capabilities", "auto"])
@pytest.mark.parametrize(
    "env",
    [{}, {"PLAYGROUND_REQUIRE_LOGIN": "true"}, {"PLAYGROUND_ALLOW_HOST_ROOT": "true"}],
)
def test_it_refuses_a_profile_that_gives_host_root_unless_both_settings_accept_it(tmp_path, profile, env):
    result = run_settings(tmp_path, PLAYGROUND_SECURITY_PROFILE=profile, **env)

    assert result.returncode != 0
    assert "root on the host" in result.stderr


def test_it_accepts_host_root_for_logged_in_learners_when_the_operator_says_so(tmp_path):
    probe(
        tmp_path,
        PLAYGROUND_SECURITY_PROFILE="capabilities",
        PLAYGROUND_REQUIRE_LOGIN="true",
        PLAYGROUND_ALLOW_HOST_ROOT="true",
    )


@pytest.mark.parametrize("mirror", ["registry.local:5000", "172.17.0.1", "http://172.17.0.1:5000", "fd00::5:5000"])
def test_it_refuses_a_registry_mirror_that_is_not_an_address_and_port(tmp_path, mirror):
    result = run_settings(tmp_path, PLAYGROUND_REGISTRY_MIRROR=mirror)

    assert result.returncode != 0
    assert "PLAYGROUND_REGISTRY_MIRROR must be ADDRESS:PORT" in result.stderr


@pytest.mark.parametrize("mirror", ["172.17.0.1:5000", "[fd00::5]:5000"])
def test_it_takes_a_registry_mirror_of_an_address_and_port(tmp_path, mirror):
    assert run_settings(tmp_path, PLAYGROUND_REGISTRY_MIRROR=mirror).returncode == 0


# Runs in the child as a given process of the platform (its command line
# decides the pool's default): the size of its PostgreSQL pool.
POOL_PROBE = """
import sys
sys.argv = {argv!r}
import django
django.setup()
from django.conf import settings
print(settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"])
"""


def pool_size(tmp_path, argv: list[str], **env: str) -> int:
    database = "postgres://playground:playground@127.0.0.1:1/playground"  # never connected to
    result = run_settings(tmp_path, POOL_PROBE.format(argv=argv), DATABASE_URL=database, **env)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


WORKER = ["celery", "-A", "playground", "worker"]


def test_a_worker_has_a_connection_for_each_of_its_job_threads_and_two_more(tmp_path):
    assert pool_size(tmp_path, WORKER) == 22
    assert pool_size(tmp_path, WORKER, PLAYGROUND_WORKER_CONCURRENCY="5") == 7
    assert pool_size(tmp_path, ["celery", "-A", "playground", "beat"]) == 2
    assert pool_size(tmp_path, ["python", "-m", "playground.server"]) == 10
    assert pool_size(tmp_path, WORKER, PLAYGROUND_DB_POOL_SIZE="3") == 3
