import json
import re

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

CONFLICT = {
    "error": "session_already_has_instance",
    "message": "This session already has an instance. Only one instance per session is allowed.",
}

# Every route of the README, in its no-slash form, with the codes it answers.
ROUTES = {
    ("/sessions", "get"): {"200"},
    ("/sessions", "post"): {"201", "400", "401", "413", "415", "429", "503"},
    ("/sessions/{id}", "get"): {"200", "404"},
    ("/sessions/{id}", "delete"): {"200", "403", "404"},
    ("/sessions/{id}/extend", "post"): {"200", "400", "403", "404", "409", "415"},
    ("/sessions/{id}/exec", "post"): {"200", "400", "404", "409", "413", "415", "429", "503"},
    ("/sessions/{id}/stats", "get"): {"200", "404", "409"},
    ("/sessions/{id}/ports", "get"): {"200", "404", "409"},
    ("/sessions/{id}/ports", "post"): {"200", "400", "403", "404", "415"},
    ("/sessions/{id}/files", "post"): {"201", "400", "403", "404", "409", "413", "415", "429", "503"},
    ("/sessions/{id}/files", "get"): {"200", "400", "403", "404", "409", "429", "503"},
    ("/sessions/{id}/files/list", "get"): {"200", "400", "403", "404", "409"},
    ("/sessions/{id}/terminal", "get"): {"200", "404"},
    ("/sessions/{id}/shares", "get"): {"200", "403", "404"},
    ("/sessions/{id}/shares", "post"): {"201", "400", "403", "404", "409", "415"},
    ("/sessions/{id}/shares/{share_id}", "delete"): {"204", "403", "404"},
    ("/shares/redeem", "post"): {"200", "400", "403", "404", "415"},
    ("/sessions/{id}/instances", "get"): {"200", "404"},
    ("/sessions/{id}/instances", "post"): {"201", "400", "403", "404", "409", "415"},
    ("/sessions/{id}/instances/{name}", "get"): {"200", "404"},
    ("/sessions/{id}/instances/{name}", "delete"): {"202", "403", "404"},
    ("/sessions/{id}/steps", "get"): {"200", "404"},
    ("/sessions/{id}/steps/{position}/check", "post"): {"200", "403", "404", "409", "429", "503"},
    ("/sessions/{id}/steps/{position}/solve", "post"): {"200", "403", "404", "409", "429", "503"},
    ("/events/join", "post"): {"200", "201", "400", "401", "403", "404", "409", "413", "415", "429", "503"},
    ("/events/{id}/seats", "get"): {"200", "404"},
    ("/events/{id}/extend", "post"): {"200", "400", "403", "404", "415"},
    ("/events/{id}/close", "post"): {"200", "403", "404"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def schema(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def _examples(schema, path, method, code):
    content = schema["paths"][path][method]["responses"][code]["content"]["application/json"]
    return {name: example["value"] for name, example in content["examples"].items()}


def test_it_serves_the_schema_as_openapi_3_yaml(api):
    schema_response = api.get("/api/schema/")

    assert schema_response.status_code == 200
    assert schema_response["Content-Type"].startswith("application/vnd.oai.openapi")
    document = yaml.safe_load(schema_response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Docker playground API"
    assert document["info"]["version"] == "1.0.0"


def test_it_generates_a_valid_schema_without_warnings(tmp_path):
    output = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(output))

    assert yaml.safe_load(output.read_text())["paths"]


def test_it_lists_every_route_once_with_its_methods(schema):
    listed = [
        (path, method)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    ]

    assert sorted(listed) == sorted(ROUTES)
    assert not [path for path in schema["paths"] if path.endswith("/") or re.search(r"[?^$()]", path)]


@pytest.mark.parametrize(("path", "method"), sorted(ROUTES))
def test_it_documents_every_answer_and_every_error_body(schema, path, method):
    responses = schema["paths"][path][method]["responses"]

    assert set(responses) == ROUTES[(path, method)]
    for code, response in responses.items():
        if code.startswith("4"):
            body = response["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}, code
            assert response["content"]["application/json"]["examples"], code


def test_it_gives_the_seeds_conflict_as_the_second_instance_example(schema):
    examples = _examples(schema, "/sessions/{id}/instances", "post", "409")

    assert examples["SessionAlreadyHasInstance"] == CONFLICT
    assert [example["error"] for example in examples.values()] == ["session_already_has_instance", "session_closed"]


def test_it_describes_the_error_body(schema):
    error = schema["components"]["schemas"]["Error"]

    assert set(error["properties"]) == {"error", "message", "details"}
    assert error["required"] == ["error", "message"]
    assert error["properties"]["details"]["type"] == "object"


def test_it_gives_the_statuses_as_enums(schema):
    components = schema["components"]["schemas"]

    assert components["Session"]["properties"]["status"] == {"$ref": "#/components/schemas/SessionStatusEnum"}
    assert components["SessionStatusEnum"]["enum"] == ["open", "closed", "expired"]
    assert components["Instance"]["properties"]["status"] == {"$ref": "#/components/schemas/InstanceStatusEnum"}
    assert components["InstanceStatusEnum"]["enum"] == [
        "pending",
        "provisioning",
        "setting_up",
        "running",
        "failed",
        "terminating",
        "terminated",
    ]


def test_it_shows_error_examples_the_api_really_answers(api, schema):
    not_json = api.post("/sessions", "playground_id=default", content_type="text/plain")
    malformed = api.post("/sessions", "{", content_type="application/json")
    too_short = api.post("/sessions", {"duration": 59}, format="json")
    unknown = api.get(f"/sessions/{'e' * 32}")

    assert not_json.status_code == 415
    assert not_json.json() == _examples(schema, "/sessions", "post", "415")["UnsupportedMediaType"]
    assert malformed.status_code == 400
    assert malformed.json()["error"] == _examples(schema, "/sessions", "post", "400")["MalformedRequest"]["error"]
    assert too_short.status_code == 400
    assert too_short.json() == _examples(schema, "/sessions", "post", "400")["InvalidRequest"]
    assert unknown.status_code == 404
    assert unknown.json() == _examples(schema, "/sessions/{id}", "get", "404")["SessionNotFound"]


def test_it_serves_the_docs_page_with_local_assets(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    bundle = next(url for url in assets if url.endswith("swagger-ui-bundle.js"))
    assert bundle.startswith("/static/drf_spectacular_sidecar/")
    assert not [url for url in assets if re.match(r"(https?:)?//", url)]
    assert "cdn" not in page.lower()
    assert api.get(bundle).status_code == 200
