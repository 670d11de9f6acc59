"""Sessions of a template, on the fake backend: its playground, its files and
setup (status setting_up) before the instance runs, and its prepared pool."""

import base64
import io
import tarfile

import pytest
from django.utils import timezone

from labs.models import Template
from sessions_app import services
from sessions_app.backends.base import ExecExit, ExecOutput
from sessions_app.models import Instance, PreparedSession
from tests.factories import make_playground

pytestmark = pytest.mark.django_db

SETUP = "git init -q ~/project"


def make_template(slug: str = "first-lab", **fields) -> Template:
    make_playground("default")
    fields = {
        "title": "A first lab",
        "playground_id": "default",
        "files": [{"path": "project/README.md", "content": base64.b64encode(b"# Hello").decode(), "mode": 0o600}],
        "setup": SETUP,
        **fields,
    }
    return Template.objects.create(slug=slug, **fields)


def open_templated(api, run_on_commit, **body):
    return run_on_commit(api.post, "/sessions", body, format="json")


def runs(fake_engine, session_id: str) -> list[list[str]]:
    return fake_engine.containers[f"playground-{session_id}"].ran


def test_a_session_of_a_template_runs_once_its_files_and_setup_are_in_place(api, run_on_commit, fake_engine):
    unpacked = {}

    def commands(cmd, stdin):
        if cmd[0] == "tar":
            with tarfile.open(fileobj=io.BytesIO(stdin)) as tar:
                unpacked.update({m.name: (tar.extractfile(m).read(), m.mode) for m in tar.getmembers()})
        return [ExecOutput("stdout", b""), ExecExit(exit_code=0, timed_out=False)]

    fake_engine.commands = commands
    make_template()

    response = open_templated(api, run_on_commit, template="first-lab")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["template"], body["playground_id"]) == ("first-lab", "default")
    instance = Instance.objects.get(session_id=body["session_id"])
    assert instance.status == "running" and instance.set_up_at is not None
    assert runs(fake_engine, body["session_id"]) == [["tar", "-x", "--no-same-owner", "-f", "-"], ["bash", "-c", SETUP]]
    assert unpacked == {"project/README.md": (b"# Hello", 0o600)}


def test_a_session_without_a_template_runs_nothing_in_its_instance(api, run_on_commit, fake_engine):
    make_template()
    response = open_templated(api, run_on_commit, playground_id="default")

    assert response.json()["template"] is None
    assert runs(fake_engine, response.json()["session_id"]) == []


def test_a_failing_setup_fails_the_instance_with_what_the_script_printed(api, run_on_commit, fake_engine):
    def commands(cmd, stdin):
        if cmd[0] == "bash":
            return [ExecOutput("stderr", b"fatal: no such repository\n"), ExecExit(exit_code=128, timed_out=False)]
        return [ExecExit(exit_code=0, timed_out=False)]

    fake_engine.commands = commands
    make_template()

    session_id = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]

    instance = Instance.objects.get(session_id=session_id)
    assert instance.status == "failed"
    assert instance.failure_reason == "setup_failed"
    assert "exit 128" in instance.error and "fatal: no such repository" in instance.error
    assert api.get(f"/sessions/{session_id}").json()["instance"]["error"] == instance.error


def test_a_setup_past_its_time_says_so(api, run_on_commit, fake_engine):
    timed_out = ExecExit(exit_code=137, timed_out=True)
    fake_engine.commands = lambda cmd, stdin: [
        timed_out if cmd[0] == "bash" else ExecExit(exit_code=0, timed_out=False)
    ]
    make_template(setup_timeout=5)

    session_id = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]

    assert "ran out of its 5 s" in Instance.objects.get(session_id=session_id).error


@pytest.mark.parametrize(
    "body",
    [
        {"template": "no-such-lab"},
        {"template": "staff-lab"},  # its playground is for staff only
    ],
)
def test_a_template_that_does_not_exist_or_is_not_for_the_caller_is_refused_alike(api, run_on_commit, body):
    make_playground("staff-only", access="staff")
    make_template("staff-lab", playground_id="staff-only")

    response = open_templated(api, run_on_commit, **body)

    assert response.status_code == 400
    assert response.json()["error"] == "template_not_allowed"
    assert not Instance.objects.exists()


@pytest.mark.parametrize("template", [7, "", "not a slug", None])
def test_a_malformed_template_is_a_clear_400(api, run_on_commit, template):
    response = open_templated(api, run_on_commit, template=template)

    assert response.status_code == 400
    assert "template" in response.json()["details"]


def test_a_template_and_a_playground_together_are_refused(api, run_on_commit):
    make_template()
    response = open_templated(api, run_on_commit, template="first-lab", playground_id="default")

    assert response.status_code == 400
    assert "template" in response.json()["details"]
    assert not Instance.objects.exists()


def test_the_pool_prepares_a_templates_sessions_set_up_and_hands_them_to_its_sessions_only(
    api, run_on_commit, fake_engine, settings
):
    settings.PLAYGROUND_PREPARED_SESSIONS = 1
    make_template(prepared=2)

    assert services.sessions_prepare() == 3

    lab = set(PreparedSession.objects.filter(template_id="first-lab").values_list("pk", flat=True))
    assert len(lab) == 2
    assert all(runs(fake_engine, prepared)[-1] == ["bash", "-c", SETUP] for prepared in lab)
    plain = open_templated(api, run_on_commit, playground_id="default").json()["session_id"]
    templated = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]
    assert plain not in lab
    assert templated in lab
    instance = Instance.objects.get(session_id=templated)
    assert instance.status == "running"
    # Set up when it was prepared; not again.
    assert runs(fake_engine, templated).count(["bash", "-c", SETUP]) == 1


def test_a_changed_template_replaces_its_prepared_sessions(fake_engine):
    template = make_template(prepared=1)
    services.sessions_prepare()
    [before] = PreparedSession.objects.filter(template=template).values_list("pk", flat=True)

    template.setup = "echo changed"
    template.save()
    services.sessions_prepare()

    [after] = PreparedSession.objects.filter(template=template).values_list("pk", flat=True)
    assert after != before
    assert f"playground-{before}" not in fake_engine.containers
    assert runs(fake_engine, after)[-1] == ["bash", "-c", "echo changed"]


def test_a_lost_container_is_made_anew_with_its_files_and_setup_again(api, run_on_commit, fake_engine):
    make_template()
    session_id = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]
    del fake_engine.containers[f"playground-{session_id}"]

    run_on_commit(services.instances_reconcile)

    instance = Instance.objects.get(session_id=session_id)
    assert instance.status == "running"
    assert runs(fake_engine, session_id) == [["tar", "-x", "--no-same-owner", "-f", "-"], ["bash", "-c", SETUP]]
    assert instance.set_up_at > instance.created_at


def test_the_templates_page_starts_a_session_of_it(client):
    make_template(description="Run, list and remove a container.")

    page = client.get("/t/first-lab")
    missing = client.get("/t/no-such-lab")

    assert page.status_code == 200
    assert b'data-template="first-lab"' in page.content
    assert b"A first lab" in page.content and b"Run, list and remove a container." in page.content
    assert missing.status_code == 404
    assert b"No such lab" in missing.content


def test_a_staff_only_templates_page_is_not_found_for_others(client):
    make_playground("staff-only", access="staff")
    make_template("staff-lab", playground_id="staff-only")

    assert client.get("/t/staff-lab").status_code == 404


def test_set_up_at_is_kept_for_an_instance_that_was_prepared(api, run_on_commit):
    make_template(prepared=1)
    services.sessions_prepare()
    before = timezone.now()

    session_id = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]

    assert Instance.objects.get(session_id=session_id).set_up_at >= before


@pytest.mark.parametrize(
    "files",
    [
        [{"path": "a.txt", "content": "not base64!"}],
        [{"path": "a.txt"}],
        [{"content": "aGk="}],
        [{"path": "a.txt", "content": "aGk=", "mode": "rwx"}],
        ["a.txt"],
        {"path": "a.txt"},
    ],
)
def test_files_edited_by_hand_into_a_wrong_shape_fail_the_session_saying_so(api, run_on_commit, fake_engine, files):
    make_template(files=files)

    session_id = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]

    instance = Instance.objects.get(session_id=session_id)
    assert (instance.status, instance.failure_reason) == ("failed", "setup_failed")
    assert "The lab's files are malformed" in instance.error
    assert runs(fake_engine, session_id) == []


def test_an_instance_closed_while_it_is_set_up_leaves_nothing_behind(api, run_on_commit, fake_engine):
    def commands(cmd, stdin):
        if cmd[0] == "bash":
            # The learner closes the session while its setup runs.
            Instance.objects.update(status=Instance.Status.TERMINATING)
        return [ExecExit(exit_code=0, timed_out=False)]

    fake_engine.commands = commands
    make_template()

    session_id = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]

    assert Instance.objects.get(session_id=session_id).status == "terminating"
    assert f"playground-{session_id}" not in fake_engine.containers


def test_an_instance_closed_before_its_setup_starts_leaves_nothing_behind(api, run_on_commit, fake_engine, monkeypatch):
    from sessions_app.backends.fake import FakeBackend

    start = FakeBackend.start

    def start_then_close(self, instance):
        result = start(self, instance)
        Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.TERMINATING)
        return result

    monkeypatch.setattr(FakeBackend, "start", start_then_close)
    make_template()

    session_id = open_templated(api, run_on_commit, template="first-lab").json()["session_id"]

    assert f"playground-{session_id}" not in fake_engine.containers
