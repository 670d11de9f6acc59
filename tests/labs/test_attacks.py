"""Attacks on guided labs and workshops that must fail: each test tries one."""

import io
import time
import zipfile

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labs import importer
from labs.models import CheckRun, Seat, Template
from sessions_app.models import Session
from tests import factories

# --- Malformed input ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("invite", ["%00", "abc%00def", "%C3%A9t%C3%A9"])
def test_it_answers_an_invite_page_of_odd_characters_with_404(invite):
    factories.make_event()

    response = Client(raise_request_exception=False).get(f"/e/{invite}")

    assert response.status_code == 404


@pytest.mark.django_db
def test_it_refuses_a_join_with_a_nul_in_the_invite_and_creates_nothing():
    factories.make_event()

    response = APIClient().post("/events/join", {"invite": "abc\x00", "name": "Ada"}, format="json")

    assert response.status_code in (400, 404)
    assert "error" in response.json()
    assert not Session.objects.exists() and not Seat.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Ada\n2026-01-01 INFO labs.events forged", "Ada\x1b[2J", "Ada\rGrace"])
def test_it_refuses_a_learner_name_with_control_characters_and_creates_nothing(name):
    event = factories.make_event()

    response = APIClient().post("/events/join", {"invite": event.invite_code, "name": name}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]
    assert not Session.objects.exists() and not Seat.objects.exists()


@pytest.mark.django_db
def test_a_learner_name_ending_in_a_line_break_is_kept_without_it(run_on_commit):
    event = factories.make_event()

    response = run_on_commit(
        APIClient().post, "/events/join", {"invite": event.invite_code, "name": " Ada\n"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert Seat.objects.get().name == "Ada"


# --- Access ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lets_neither_the_trainer_nor_another_learner_check_or_solve_a_learners_step():
    trainer = factories.make_user("trainer")
    template = factories.make_template("lab", steps=[{"check_script": "true", "solve_script": "true"}])
    event = factories.make_event(template=template, owner=trainer)
    learners = [APIClient(), APIClient()]
    sessions = [
        client.post("/events/join", {"invite": event.invite_code, "name": name}, format="json").json()["session_id"]
        for client, name in zip(learners, ["Ada", "Grace"], strict=True)
    ]
    watcher = APIClient()
    watcher.force_login(trainer)

    assert watcher.get(f"/sessions/{sessions[0]}/steps").status_code == 200  # read-only: the steps, as shown
    for what in ("check", "solve"):
        assert watcher.post(f"/sessions/{sessions[0]}/steps/1/{what}").status_code == 403
        assert learners[1].post(f"/sessions/{sessions[0]}/steps/1/{what}").status_code == 404
    assert learners[1].get(f"/sessions/{sessions[0]}/steps").status_code == 404
    assert learners[1].get(f"/events/{event.pk}/seats").status_code == 404
    assert not CheckRun.objects.exists()


@pytest.mark.django_db
def test_it_limits_how_fast_a_learner_closes_and_joins_again(settings, run_on_commit):
    # Each close and join again starts a new instance: as fast as POST /sessions may, no faster.
    settings.PLAYGROUND_SESSION_RATE = "3/min"
    event = factories.make_event(seats=2)
    learner = APIClient()
    answers = []
    for _ in range(5):
        response = learner.post("/events/join", {"invite": event.invite_code, "name": "Ada"}, format="json")
        answers.append(response.status_code)
        if response.status_code == 201:
            run_on_commit(learner.delete, f"/sessions/{response.json()['session_id']}")

    # The first join, from a browser with no cookie yet, took a new seat (which the seats bound); then 3 a minute.
    assert answers == [201, 201, 201, 201, 429]
    assert Session.objects.count() == 4 and Seat.objects.count() == 1
    # Anyone else in the room (behind the same address) still joins.
    other = APIClient().post("/events/join", {"invite": event.invite_code, "name": "Grace"}, format="json")
    assert other.status_code == 201


# --- Importing a template ------------------------------------------------------------


def zipped(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    buffer.seek(0)
    return buffer


@pytest.mark.django_db
def test_it_refuses_a_yaml_bomb_of_aliases_quickly():
    # Eight lines that stand for 10**8 items: the problem message spelled them all out.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 8)]
    text = "slug: bomb\ntitle: Bomb\nsteps: [{title: One}]\n" + "\n".join(lines) + "\nprepared: *a7\n"
    started = time.monotonic()

    with pytest.raises(importer.TemplateFormatError) as raised:
        importer.template_import(zipped({"template.yaml": text}))

    assert time.monotonic() - started < 2
    assert "aliases" in str(raised.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("yaml_lines", "files", "problem"),
    [
        ('title: "A\\0B"', {}, "title holds a NUL character"),
        ('playground: "def\\0ault"', {}, "there is no playground"),
        ("playground: {storage: 00000000000000000000000000000010G}", {}, "storage must be a size"),
        ("", {"one.md": "Step\x00one"}, "one.md is not text"),
    ],
)
def test_it_refuses_a_template_the_database_could_not_hold_and_writes_nothing(yaml_lines, files, problem):
    # Each of these was written as it came, and PostgreSQL refused it: a 500 in the admin's import.
    text = "slug: odd\ntitle: Odd\nsteps: [{title: One, text: one.md}]\n" + yaml_lines + "\n"

    with pytest.raises(importer.TemplateFormatError) as raised:
        importer.template_import(zipped({"template.yaml": text, "one.md": "Step one", **files}))

    assert problem in str(raised.value)
    assert not Template.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["[" * 20000 + "]" * 20000, "{a: " * 10000 + "1" + "}" * 10000])
def test_it_refuses_a_template_yaml_nested_deeper_than_python_recurses(value):
    # PyYAML composes nested values by recursion: this was a RecursionError, a 500 in the admin.
    text = f"slug: deep\ntitle: Deep\nsteps: [{{title: One}}]\nx: {value}\n"

    with pytest.raises(importer.TemplateFormatError) as raised:
        importer.template_import(zipped({"template.yaml": text}))

    assert f"values nest more than {importer.MAX_YAML_DEPTH} deep" in str(raised.value)


@pytest.mark.django_db
def test_it_refuses_a_huge_template_yaml_without_parsing_it():
    # Within the template's 8 MiB, but a minute of the web process's time to parse.
    text = "slug: huge\ntitle: Huge\nsteps: [{title: One}]\nx: [" + ",".join(["1"] * 3_000_000) + "]\n"
    started = time.monotonic()

    with pytest.raises(importer.TemplateFormatError) as raised:
        importer.template_import(zipped({"template.yaml": text}))

    assert time.monotonic() - started < 2
    assert "template.yaml: is larger than" in str(raised.value)


@pytest.mark.django_db
def test_it_refuses_a_template_that_picks_its_own_instance_image():
    # The instance's image runs with the capabilities its entrypoint needs as root: not the author's to choose.
    text = "slug: own\ntitle: Own\nsteps: [{title: One}]\nplayground: {image: evil/root:latest}\n"

    with pytest.raises(importer.TemplateFormatError) as raised:
        importer.template_import(zipped({"template.yaml": text}))

    assert "image 'evil/root:latest' is not an instance image" in str(raised.value)
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_it_takes_an_instance_image_an_admin_offers_already(settings):
    factories.make_playground("tools", allowed_images=["registry.local/dind-tools:1"])
    for slug, image in [("platform", settings.PLAYGROUND_DIND_IMAGE), ("tools", "registry.local/dind-tools:1")]:
        text = f"slug: {slug}\ntitle: T\nsteps: [{{title: One}}]\nplayground: {{image: {image!r}}}\n"

        template = importer.template_import(zipped({"template.yaml": text}))

        assert template.playground.default_image == image
