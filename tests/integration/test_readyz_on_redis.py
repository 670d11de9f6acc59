"""/readyz follows the broker: a private Redis is stopped and started again.

The shared Redis of the test run (REDIS_URL) serves other tests and workers,
so this test runs a redis-server of its own and points the readiness check's
broker URL at it.
"""

import shutil
import socket
import subprocess

import pytest
import redis

from tests.support.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        wait_for(lambda: self.answers(client), timeout=10, what=f"redis-server on port {self.port}")

    def answers(self, client: redis.Redis) -> bool:
        assert self.process.poll() is None, "redis-server exited"
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(real_services, settings):
    server = PrivateRedis(free_port())
    server.start()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{server.port}/0"
    yield server
    server.stop()


def test_it_reports_the_broker_down_and_up_again(client, private_redis):
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "docker": "ok", "dind_image": "ok"},
    }

    private_redis.stop()

    down = client.get("/readyz")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert f"127.0.0.1:{private_redis.port}" in body["checks"]["broker"]
    assert "refused" in body["checks"]["broker"].lower()
    assert {name: result for name, result in body["checks"].items() if name != "broker"} == {
        "database": "ok",
        "docker": "ok",
        "dind_image": "ok",
    }

    private_redis.start()

    again = client.get("/readyz")
    assert again.status_code == 200, again.content
    assert again.json()["checks"]["broker"] == "ok"
