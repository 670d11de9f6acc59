"""/sessions/{id}/steps: a guided lab's steps, their unlocking, and a step's check and solution (fake backend)."""

import re

import pytest
from rest_framework.test import APIClient

from labs.models import CHECK_TIMEOUT, CheckRun
from labs.setup import OUTPUT_KEPT
from sessions_app.backends.base import ExecExit, ExecOutput
from sessions_app.backends.fake import FakeBackend
from sessions_app.models import Instance, Session
from sessions_app.services.commands import take_place
from tests.factories import make_step, make_template

pytestmark = pytest.mark.django_db

STEP_ONE = """Make a file in your home:

```bash run
echo done > ~/step1
```

<script>alert("xss")</script> and [a link](javascript:alert(1)).
"""


@pytest.fixture(autouse=True)
def _fake_backend(use_backend):
    """Unit tests never touch Docker."""


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def lab():
    """Three steps: a file to make (checked, with a solution), another (checked), and a last one with neither."""
    template = make_template("first-lab", title="First lab")
    make_step(
        template,
        1,
        title="Make a file",
        text=STEP_ONE,
        check_script="test -f ~/step1",
        solve_script="echo done > ~/step1",
    )
    make_step(template, 2, title="Another", text="Now `step2`.", check_script="test -f ~/step2")
    make_step(template, 3, title="Done", text="Well done.")
    return template


@pytest.fixture
def shell(fake_engine):
    """The learner's home in the fake instance: `echo done > ~/NAME` makes a file, `test -f ~/NAME` looks."""
    home: set[str] = set()

    def run(cmd: list[str], stdin: bytes):
        assert cmd[:2] == ["bash", "-c"]
        script = cmd[2]
        if made := re.fullmatch(r"echo done > ~/(\w+)", script):
            home.add(made[1])
            return [ExecExit(exit_code=0, timed_out=False)]
        if looked := re.fullmatch(r"test -f ~/(\w+)", script):
            if looked[1] in home:
                return [ExecExit(exit_code=0, timed_out=False)]
            return [ExecOutput("stderr", f"no ~/{looked[1]}\n".encode()), ExecExit(exit_code=1, timed_out=False)]
        return [ExecOutput("stderr", b"unknown script\n"), ExecExit(exit_code=127, timed_out=False)]

    return home, run


@pytest.fixture
def session_id(api, lab, shell, fake_engine, django_capture_on_commit_callbacks) -> str:
    """A session of the lab opened by `api` (its owner), its instance running on the fake backend."""
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/sessions", {"template": "first-lab"}, format="json")
    assert response.status_code == 201, response.content
    opened = response.json()["session_id"]
    container(fake_engine, opened).commands = shell[1]
    return opened


def container(fake_engine, session_id: str):
    return fake_engine.containers[f"playground-{session_id}"]


def steps(client, session_id: str) -> list[dict]:
    response = client.get(f"/sessions/{session_id}/steps")
    assert response.status_code == 200, response.content
    return response.json()


def check(client, session_id: str, position, **extra):
    return client.post(f"/sessions/{session_id}/steps/{position}/check", **extra)


def solve(client, session_id: str, position, **extra):
    return client.post(f"/sessions/{session_id}/steps/{position}/solve", **extra)


def shared(api, session_id: str, mode: str) -> APIClient:
    response = api.post(f"/sessions/{session_id}/shares", {"mode": mode}, format="json")
    assert response.status_code == 201, response.content
    holder = APIClient()
    holder.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return holder


# --- Reading ---------------------------------------------------------------------------


def test_it_lists_the_steps_with_only_the_first_unlocked(api, session_id):
    listed = steps(api, session_id)

    assert [(s["position"], s["title"]) for s in listed] == [(1, "Make a file"), (2, "Another"), (3, "Done")]
    assert [s["unlocked"] for s in listed] == [True, False, False]
    assert [(s["has_check"], s["has_solve"]) for s in listed] == [(True, True), (True, False), (False, False)]
    assert [s["passed"] for s in listed] == [False, False, False]
    assert [s["last_check"] for s in listed] == [None, None, None]
    assert listed[1]["html"] == "<p>Now <code>step2</code>.</p>\n"


def test_it_renders_runnable_blocks_and_neutralises_the_authors_html_and_scripts(api, session_id):
    html = steps(api, session_id)[0]["html"]

    assert 'data-run="echo done &gt; ~/step1"' in html
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html.replace("[a link](javascript:alert(1))", "")
    assert "href=" not in html


def test_it_answers_the_same_with_a_trailing_slash(api, session_id):
    assert api.get(f"/sessions/{session_id}/steps/").json() == steps(api, session_id)
    assert api.post(f"/sessions/{session_id}/steps/1/check/").status_code == 200
    assert api.post(f"/sessions/{session_id}/steps/1/solve/").status_code == 200


# --- Checking and unlocking --------------------------------------------------------------


def test_it_records_a_failed_check_and_keeps_the_next_step_locked(api, session_id, fake_engine):
    response = check(api, session_id, 1)

    assert response.status_code == 200
    assert response.json() == {"passed": False, "output": "no ~/step1\n", "timed_out": False, "next_unlocked": False}
    assert container(fake_engine, session_id).ran[-1] == ["bash", "-c", "test -f ~/step1"]
    run = CheckRun.objects.get()
    assert (run.session_id, run.step.position, run.passed, run.output) == (session_id, 1, False, "no ~/step1\n")
    listed = steps(api, session_id)
    assert listed[0]["last_check"]["passed"] is False
    assert listed[0]["last_check"]["output"] == "no ~/step1\n"
    assert listed[0]["last_check"]["ran_at"]
    assert [s["unlocked"] for s in listed] == [True, False, False]


def test_it_unlocks_the_next_step_once_the_check_passes(api, session_id, shell):
    shell[0].add("step1")

    response = check(api, session_id, 1)

    assert response.json() == {"passed": True, "output": "", "timed_out": False, "next_unlocked": True}
    listed = steps(api, session_id)
    assert [s["unlocked"] for s in listed] == [True, True, False]
    assert [s["passed"] for s in listed] == [True, False, False]


def test_it_unlocks_the_last_step_once_the_second_passes(api, session_id, shell):
    shell[0].update({"step1", "step2"})
    check(api, session_id, 1)

    second = check(api, session_id, 2)

    assert second.json()["next_unlocked"] is True
    assert [s["unlocked"] for s in steps(api, session_id)] == [True, True, True]


def test_it_unlocks_past_a_step_without_a_check_only_once_the_steps_before_it_are_done(
    api, shell, fake_engine, django_capture_on_commit_callbacks
):
    template = make_template("reading-lab")
    make_step(template, 1, check_script="test -f ~/step1")
    make_step(template, 2, text="Only reading here.")
    make_step(template, 3, check_script="test -f ~/step3")
    make_step(template, 4)
    with django_capture_on_commit_callbacks(execute=True):
        session_id = api.post("/sessions", {"template": "reading-lab"}, format="json").json()["session_id"]
    container(fake_engine, session_id).commands = shell[1]
    before = [s["unlocked"] for s in steps(api, session_id)]
    shell[0].add("step1")

    passed = check(api, session_id, 1)

    assert before == [True, False, False, False]
    assert passed.json()["next_unlocked"] is True
    assert [s["unlocked"] for s in steps(api, session_id)] == [True, True, True, False]


def test_it_keeps_a_step_passed_when_a_later_check_fails(api, session_id, shell):
    shell[0].add("step1")
    check(api, session_id, 1)
    shell[0].discard("step1")

    again = check(api, session_id, 1)

    assert again.json() == {"passed": False, "output": "no ~/step1\n", "timed_out": False, "next_unlocked": True}
    first = steps(api, session_id)[0]
    assert (first["passed"], first["last_check"]["passed"]) == (True, False)
    assert CheckRun.objects.count() == 2


def test_it_counts_only_this_sessions_checks(api, session_id, shell, fake_engine, django_capture_on_commit_callbacks):
    shell[0].add("step1")
    check(api, session_id, 1)
    with django_capture_on_commit_callbacks(execute=True):
        other = api.post("/sessions", {"template": "first-lab"}, format="json").json()["session_id"]

    assert [s["unlocked"] for s in steps(api, other)] == [True, False, False]
    assert steps(api, other)[0]["last_check"] is None


def test_it_refuses_to_check_or_solve_a_locked_step(api, session_id, fake_engine):
    ran_before = list(container(fake_engine, session_id).ran)

    checked, solved = check(api, session_id, 2), solve(api, session_id, 2)

    assert checked.status_code == solved.status_code == 409
    assert checked.json() == {"error": "step_locked", "message": "This step opens once the steps before it are done."}
    assert solved.json()["error"] == "step_locked"
    assert container(fake_engine, session_id).ran == ran_before
    assert not CheckRun.objects.exists()


def test_it_says_when_a_check_ran_out_of_its_time(api, session_id, fake_engine, monkeypatch):
    timeouts = []
    fake_exec = FakeBackend.exec

    def recording_exec(self, instance, cmd, *, stdin, timeout):
        timeouts.append(timeout)
        return fake_exec(self, instance, cmd, stdin=stdin, timeout=timeout)

    monkeypatch.setattr(FakeBackend, "exec", recording_exec)
    container(fake_engine, session_id).commands = lambda cmd, stdin: [
        ExecOutput("stdout", b"waiting\n"),
        ExecExit(exit_code=137, timed_out=True),
    ]

    response = check(api, session_id, 1)

    assert response.json() == {"passed": False, "output": "waiting\n", "timed_out": True, "next_unlocked": False}
    assert timeouts == [CHECK_TIMEOUT]
    assert CheckRun.objects.get().passed is False


def test_it_keeps_the_end_of_a_long_output(api, session_id, fake_engine):
    container(fake_engine, session_id).commands = lambda cmd, stdin: [
        *(ExecOutput("stdout", f"line {n:05}\n".encode()) for n in range(2000)),
        ExecExit(exit_code=1, timed_out=False),
    ]

    output = check(api, session_id, 1).json()["output"]

    assert len(output) == OUTPUT_KEPT
    assert output.endswith("line 01999\n")
    assert len(CheckRun.objects.get().output) == OUTPUT_KEPT


# --- Solving ---------------------------------------------------------------------------------


def test_it_runs_the_solution_and_records_nothing(api, session_id, fake_engine):
    response = solve(api, session_id, 1)

    assert response.status_code == 200
    assert response.json() == {"exit_code": 0, "output": "", "timed_out": False}
    assert container(fake_engine, session_id).ran[-1] == ["bash", "-c", "echo done > ~/step1"]
    assert not CheckRun.objects.exists()
    assert check(api, session_id, 1).json()["passed"] is True


def test_it_answers_how_a_failed_solution_ended(api, session_id, fake_engine):
    container(fake_engine, session_id).commands = lambda cmd, stdin: [
        ExecOutput("stderr", b"bash: nope: command not found\n"),
        ExecExit(exit_code=127, timed_out=False),
    ]

    response = solve(api, session_id, 1)

    assert response.json() == {"exit_code": 127, "output": "bash: nope: command not found\n", "timed_out": False}


def test_it_refuses_a_step_with_no_check_or_no_solution(api, session_id, shell):
    shell[0].update({"step1", "step2"})
    check(api, session_id, 1)
    check(api, session_id, 2)

    no_solution, no_check = solve(api, session_id, 2), check(api, session_id, 3)

    assert no_solution.status_code == no_check.status_code == 409
    assert no_solution.json()["error"] == "no_solve"
    assert no_check.json() == {"error": "no_check", "message": "This step has nothing to check."}


# --- What is not there, and who may ----------------------------------------------------------


def test_it_answers_404_for_a_session_of_no_lab(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        plain = api.post("/sessions", {"playground_id": "default"}, format="json").json()["session_id"]

    for response in (api.get(f"/sessions/{plain}/steps"), check(api, plain, 1), solve(api, plain, 1)):
        assert response.status_code == 404
        assert response.json() == {
            "error": "no_steps",
            "message": "This session is not of a guided lab: it has no steps.",
        }


@pytest.mark.parametrize("position", ["4", "0", "-1", "01", "abc", "9" * 30])
def test_it_answers_404_for_a_step_the_lab_does_not_have(api, session_id, position):
    for response in (check(api, session_id, position), solve(api, session_id, position)):
        assert response.status_code == 404
        assert response.json()["error"] == "step_not_found"
    assert not CheckRun.objects.exists()


def test_it_answers_a_stranger_and_an_unknown_session_alike(api, session_id):
    stranger = APIClient()

    for client, sid in ((stranger, session_id), (api, "f" * 32)):
        for response in (client.get(f"/sessions/{sid}/steps"), check(client, sid, 1), solve(client, sid, 1)):
            assert response.status_code == 404
            assert response.json()["error"] == "session_not_found"
    assert not CheckRun.objects.exists()


def test_it_lets_a_read_only_share_read_the_steps_but_not_check_or_solve(api, session_id, fake_engine):
    watcher = shared(api, session_id, "read-only")
    ran_before = list(container(fake_engine, session_id).ran)

    listed = steps(watcher, session_id)
    checked, solved = check(watcher, session_id, 1), solve(watcher, session_id, 1)

    assert [s["position"] for s in listed] == [1, 2, 3]
    assert checked.status_code == solved.status_code == 403
    assert checked.json()["error"] == solved.json()["error"] == "not_owner"
    assert container(fake_engine, session_id).ran == ran_before
    assert not CheckRun.objects.exists()


def test_it_lets_a_read_write_share_check_and_solve(api, session_id):
    typist = shared(api, session_id, "read-write")

    assert solve(typist, session_id, 1).status_code == 200
    assert check(typist, session_id, 1).json()["passed"] is True


def test_it_refuses_a_check_from_another_sites_page(api, session_id):
    response = check(api, session_id, 1, HTTP_ORIGIN="https://evil.example")

    assert response.status_code == 403
    assert response.json()["error"] == "cross_site_request"
    assert not CheckRun.objects.exists()


def test_it_needs_the_csrf_token_to_check_on_the_strength_of_the_browser_cookie(lab, shell, fake_engine):
    browser = APIClient(enforce_csrf_checks=True)
    browser.get("/")
    csrf = browser.cookies["csrftoken"].value
    session_id = browser.post("/sessions", {"template": "first-lab"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    session_id = session_id.json()["session_id"]
    Instance.objects.filter(session_id=session_id).update(status=Instance.Status.RUNNING)
    FakeBackend().start(Instance.objects.get(session_id=session_id))
    container(fake_engine, session_id).commands = shell[1]

    forged, genuine = check(browser, session_id, 1), check(browser, session_id, 1, HTTP_X_CSRFTOKEN=csrf)

    assert forged.status_code == 403
    assert genuine.status_code == 200
    assert CheckRun.objects.count() == 1


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_it_refuses_a_method_a_route_does_not_offer(api, session_id, method):
    assert getattr(api, method)(f"/sessions/{session_id}/steps/1/check").status_code == 405
    assert getattr(api, method)(f"/sessions/{session_id}/steps/1/solve").status_code == 405
    assert api.post(f"/sessions/{session_id}/steps").status_code == 405
    assert not CheckRun.objects.exists()


# --- The instance ------------------------------------------------------------------------------


def test_it_answers_409_while_the_instance_does_not_run(api, session_id):
    Instance.objects.filter(session_id=session_id).update(status=Instance.Status.SETTING_UP)

    response = check(api, session_id, 1)

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"
    assert steps(api, session_id)[0]["unlocked"] is True  # reading needs no instance
    assert not CheckRun.objects.exists()


def test_it_answers_409_in_a_closed_session(api, session_id):
    Session.objects.filter(pk=session_id).update(status=Session.Status.CLOSED)

    assert check(api, session_id, 1).json()["error"] == "session_closed"
    assert solve(api, session_id, 1).status_code == 409


def test_it_records_nothing_when_the_instance_stops_answering(api, session_id, fake_engine):
    container(fake_engine, session_id).stop()

    response = check(api, session_id, 1)

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"
    assert not CheckRun.objects.exists()


def test_it_counts_a_check_against_the_sessions_commands(api, session_id, settings):
    settings.PLAYGROUND_EXEC_PER_SESSION = 1
    release = take_place(session_id)
    try:
        busy = check(api, session_id, 1)
    finally:
        release()

    assert busy.status_code == 429
    assert busy.json()["error"] == "too_many_commands"
    assert check(api, session_id, 1).status_code == 200
