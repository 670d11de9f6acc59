"""Schemathesis fuzzes every operation of the OpenAPI schema the app serves.

The requests go to the app in-process (WSGI), on the test database, with
Celery eager on the fake backend: no server and no Docker container is
needed. Every response must not be a server error and must conform to the
schema (a documented status code and content type, a body and headers that
match). Session ids made up by the generator only ever reach the 404 paths,
so each operation with a session id runs a second time with a real session,
freshly opened for every example, as its owner (and `node1`, its instance's
name).
"""

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    # Exec streams through an async iterator, which this WSGI transport reads whole.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume"),
]

APP = get_wsgi_application()


# Loaded at import (pytest-django has set Django up by then): schemathesis's
# lazy `from_fixture` loader does not work on pytest 9, which renamed a
# private attribute it sets. The schema view touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP)


@pytest.fixture(autouse=True)
def fuzzable_platform(real_services, use_backend, settings):
    from sessions_app.models import DockerHost, Playground

    Playground.objects.get_or_create(pk="default")
    # A host with room for every session the fuzzer opens (on the fake backend).
    DockerHost.objects.update_or_create(name="local", defaults={"url": settings.DOCKER_HOST, "capacity": 1_000_000})
    # The fuzzer opens many sessions from one address within a minute; the
    # limits have tests of their own and are not what is fuzzed here.
    settings.PLAYGROUND_MAX_SESSIONS = 1_000_000
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 1_000_000
    settings.PLAYGROUND_SESSION_RATE = "1000000/min"


# Operations whose documented 400 also covers rules no schema can state: the
# playground and image must exist in the database, and a duration is bounded by
# the playground's own maximum. A schema-valid body may rightly get that 400,
# so these two are exempt from the "valid data is accepted" check (and only it).
# Likewise a share link's token must be one the platform made, and a file's
# path one that exists in the instance, within the learner's home or /tmp.
BUSINESS_RULE_OPERATIONS = {
    ("POST", "/sessions"),
    ("POST", "/sessions/{id}/instances"),
    ("POST", "/shares/redeem"),
    ("DELETE", "/sessions/{id}/shares/{share_id}"),
    ("POST", "/sessions/{id}/files"),
    ("GET", "/sessions/{id}/files"),
    ("GET", "/sessions/{id}/files/list"),
}


def open_session() -> tuple[str, str]:
    """A real session, opened through the API itself: its id and its owner's access token."""
    from werkzeug import Client

    response = Client(APP).post("/sessions", json={"playground_id": "default"}, headers={"Host": "localhost"})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["session_id"], response.json["access_token"]


@schema.parametrize()
@pytest.mark.parametrize("real_session", [False, True], ids=["generated-id", "real-session"])
# The same examples on every run, so that a run is red only for a change of
# the code; PLAYGROUND_FUZZ_EXPLORE=1 draws new ones (to look for more).
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("PLAYGROUND_FUZZ_EXPLORE"),
)
def test_it_answers_every_generated_request_within_the_schema(case, real_session):
    if real_session:
        if "id" not in (case.path_parameters or {}):
            pytest.skip("the operation names no session")
        case.path_parameters["id"], token = open_session()
        # As its owner: anyone else is told there is no such session.
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        if "name" in case.path_parameters:
            case.path_parameters["name"] = "node1"
    exempt = (case.method.upper(), case.path) in BUSINESS_RULE_OPERATIONS

    case.call_and_validate(excluded_checks=[positive_data_acceptance] if exempt else None)
