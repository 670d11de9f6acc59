"""/readyz follows the broker: a private Redis is stopped and started again.

The shared Redis of the test run (REDIS_URL) serves other tests and workers,
so this test runs a redis-server of its own and points the readiness check's
broker URL at it.
"""

import pytest

from tests.factories import make_host
from tests.support.stack import PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def private_redis(real_services, settings):
    server = PrivateRedis().start()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{server.port}/0"
    yield server
    server.stop()


def test_it_reports_the_broker_down_and_up_again(client, private_redis):
    make_host()  # the machine's engine (a transactional test before may have flushed the migration's)
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "docker": "ok", "dind_image": "ok"}
    assert ready.json()["hosts"]["local"]["engine"] == "ok"  # the machine's engine, a real one

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
