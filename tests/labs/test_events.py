"""Workshops: joining one (the service, POST /events/join and the /e/<invite> page), the trainer's
dashboard, seats as JSON and CSV, extend and close all, and the pool prepared ahead of an event."""

import csv
import io
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from labs import events
from labs.models import CheckRun, Event, Seat
from labs.pools import prepared_targets
from sessions_app.errors import EventFull, EventNotFound, EventNotOpen
from sessions_app.models import Session
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fake_backend(use_backend):
    """Unit tests never touch Docker."""


@pytest.fixture
def event():
    return factories.make_event(seats=3)


@pytest.fixture
def trainer(event):
    user = factories.make_user("trainer")
    Event.objects.filter(pk=event.pk).update(owner=user)
    return user


def logged_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def join(client: APIClient, event: Event, name: str = "Ada", **extra):
    return client.post("/events/join", {"invite": event.invite_code, "name": name}, format="json", **extra)


# --- Joining --------------------------------------------------------------------------


def test_it_opens_a_session_of_the_template_and_takes_a_seat(event):
    client = APIClient()

    response = join(client, event, "Ada")

    assert response.status_code == 201, response.content
    body = response.json()
    session = Session.objects.get(pk=body["session_id"])
    assert body["template"] == event.template_id == session.template_id
    assert body["access"] == "owner"
    assert body["access_token"]
    assert client.get(f"/sessions/{session.pk}").status_code == 200  # the browser's cookie owns it
    seat = Seat.objects.get(session=session)
    assert (seat.event_id, seat.name) == (event.pk, "Ada")
    # Until the event ends: not the playground's 2 hours from now.
    assert abs((session.expires_at - event.ends_at).total_seconds()) < 5


def test_it_lasts_no_longer_than_the_playground_allows(event):
    Event.objects.filter(pk=event.pk).update(ends_at=timezone.now() + timedelta(hours=9))

    response = join(APIClient(), event)

    session = Session.objects.get(pk=response.json()["session_id"])
    assert session.expires_at <= session.created_at + session.playground.max_duration
    assert session.expires_at < timezone.now() + timedelta(hours=5)


def test_it_refuses_the_learner_past_the_last_seat_and_creates_nothing(event):
    for name in ("Ada", "Grace", "Linus"):
        assert join(APIClient(), event, name).status_code == 201

    response = join(APIClient(), event, "Ken")

    assert response.status_code == 409
    assert response.json() == {"error": "event_full", "message": EventFull.message}
    assert Seat.objects.filter(event=event).count() == 3
    assert Session.objects.count() == 3


@pytest.mark.parametrize(
    ("starts_in", "lasts"),
    [(timedelta(minutes=16), timedelta(hours=1)), (timedelta(hours=-2), timedelta(hours=1))],
    ids=["too-early", "ended"],
)
def test_it_refuses_a_learner_outside_the_join_window(starts_in, lasts):
    event = factories.make_event(starts_in=starts_in, lasts=lasts)

    response = join(APIClient(), event)

    assert response.status_code == 409
    assert response.json()["error"] == "event_not_open"
    assert not Session.objects.exists()


def test_it_opens_joining_fifteen_minutes_before_the_start():
    event = factories.make_event(starts_in=timedelta(minutes=14))

    assert join(APIClient(), event).status_code == 201
    assert events.JOIN_OPENS_BEFORE == timedelta(minutes=15)


def test_it_gives_a_learner_who_joins_again_their_open_session_not_a_second_seat(event):
    browser = APIClient()
    first = join(browser, event, "Ada").json()

    again = join(browser, event, "Ada again")

    assert again.status_code == 200
    assert again.json()["session_id"] == first["session_id"]
    assert again.json()["access_token"] is None
    assert Seat.objects.filter(event=event).count() == 1


def test_it_knows_a_logged_in_learner_again_in_another_browser(event):
    learner = factories.make_user("ada")
    first = join(logged_in(learner), event).json()

    again = join(logged_in(learner), event)

    assert again.status_code == 200
    assert again.json()["session_id"] == first["session_id"]
    assert Seat.objects.filter(event=event).count() == 1


def test_it_gives_a_learner_whose_session_ended_a_new_one_on_the_same_seat(event):
    browser = APIClient()
    first = join(browser, event).json()["session_id"]
    browser.delete(f"/sessions/{first}")
    for name in ("Grace", "Linus"):
        join(APIClient(), event, name)  # the event is full now

    again = join(browser, event)

    assert again.status_code == 201
    assert again.json()["session_id"] != first
    assert Seat.objects.filter(event=event).count() == 3
    assert Seat.objects.get(event=event, name="Ada").session_id == again.json()["session_id"]


def test_it_lets_a_room_behind_one_address_join_past_the_per_client_limit(settings, event):
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 1

    answers = [join(APIClient(), event, name).status_code for name in ("Ada", "Grace", "Linus")]

    assert answers == [201, 201, 201]


def test_it_answers_an_unknown_invite_with_404(event):
    response = APIClient().post("/events/join", {"invite": "nope", "name": "Ada"}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": "event_not_found", "message": EventNotFound.message}


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        ('{"invite": "x", "name": "Ada"}', "text/plain", 415),
        ("{", "application/json", 400),
        ('{"invite": "INVITE"}', "application/json", 400),
        ('{"invite": "INVITE", "name": ""}', "application/json", 400),
        ('{"invite": "INVITE", "name": "Ada", "seat": 1}', "application/json", 400),
        ('{"invite": 12, "name": "Ada"}', "application/json", 400),
    ],
    ids=["not-json", "malformed", "no-name", "blank-name", "unknown-field", "number"],
)
def test_it_refuses_a_malformed_join_and_creates_nothing(event, body, content_type, code):
    response = APIClient().post("/events/join", body.replace("INVITE", event.invite_code), content_type=content_type)

    assert response.status_code == code
    assert response.json()["error"]
    assert not Seat.objects.exists()


def test_it_answers_405_to_a_get_on_join():
    assert APIClient().get("/events/join").status_code == 405


def test_it_joins_through_the_service_in_the_same_way(event):
    joined = events.event_join(invite_code=event.invite_code, name="Ada", browser_key="k1")
    again = events.event_join(invite_code=event.invite_code, name="Ada", browser_key="k1")

    assert (joined.rejoined, again.rejoined) == (False, True)
    assert again.session.pk == joined.session.pk
    with pytest.raises(EventNotFound):
        events.event_join(invite_code="", name="Ada", browser_key="k2")


# --- The join page -----------------------------------------------------------------------


def test_it_shows_the_workshop_its_seats_left_and_a_name_to_join_with(event):
    join(APIClient(), event, "Ada")

    response = APIClient().get(f"/e/{event.invite_code}")

    page = response.content.decode()
    assert response.status_code == 200
    assert event.title in page and event.template.title in page
    assert "2 of 3 seats left" in page
    assert 'id="join-form"' in page and 'id="learner-name"' in page


def test_it_says_so_on_the_page_when_the_workshop_is_full_or_not_open(event):
    for name in ("Ada", "Grace", "Linus"):
        join(APIClient(), event, name)
    later = factories.make_event(starts_in=timedelta(days=1), template=event.template)

    full = APIClient().get(f"/e/{event.invite_code}").content.decode()
    not_yet = APIClient().get(f"/e/{later.invite_code}").content.decode()

    assert EventFull.message in full and 'id="join-form"' not in full
    assert 'data-reason="event_not_open"' in not_yet and "opens for joining at" in not_yet
    assert 'id="join-form"' not in not_yet


def test_it_leads_a_learner_with_a_seat_back_to_their_terminal(event):
    browser = APIClient()
    session_id = join(browser, event).json()["session_id"]

    page = browser.get(f"/e/{event.invite_code}").content.decode()

    assert f'href="/p/{session_id}"' in page and 'id="join-form"' not in page


def test_it_answers_an_unknown_invite_page_with_404():
    response = APIClient().get("/e/no-such-invite")

    assert response.status_code == 404
    assert "No such workshop" in response.content.decode()


# --- Progress, the dashboard and the CSV ------------------------------------------------------


def test_it_puts_each_learner_at_the_first_step_whose_check_has_not_passed():
    template = factories.make_template(
        "progress", steps=[{"check_script": "test -f a"}, {}, {"check_script": "test -f b"}]
    )
    event = factories.make_event(template=template, seats=5)
    steps = list(template.steps.order_by("position"))
    sessions = [events.event_join(invite_code=event.invite_code, name=n, browser_key=n).session for n in "ABCD"]
    CheckRun.objects.create(session=sessions[0], step=steps[0], passed=False)
    CheckRun.objects.create(session=sessions[1], step=steps[0], passed=True)
    CheckRun.objects.create(session=sessions[1], step=steps[2], passed=False)
    CheckRun.objects.create(session=sessions[2], step=steps[0], passed=True)
    CheckRun.objects.create(session=sessions[2], step=steps[2], passed=True)

    rows = {row.name: row for row in events.event_seats(event=event)}

    assert {name: row.progress for name, row in rows.items()} == {
        "A": "1 of 3",
        "B": "3 of 3",
        "C": "done",
        "D": "1 of 3",
    }
    assert rows["B"].last_check.step == steps[2] and rows["B"].last_check.passed is False
    assert rows["D"].last_check is None


def test_it_counts_a_template_without_checks_as_done(event):
    events.event_join(invite_code=event.invite_code, name="Ada", browser_key="k")

    [row] = events.event_seats(event=event)

    assert row.done and row.steps == 0


def test_it_shows_the_trainer_every_seat_on_the_dashboard(event, trainer):
    session_id = join(APIClient(), event, "Ada").json()["session_id"]

    response = logged_in(trainer).get(f"/events/{event.pk}/dashboard")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Ada" in page and f'href="/p/{session_id}"' in page
    assert "1 of 3 seats taken" in page
    assert f"/e/{event.invite_code}" in page


def test_it_shows_the_dashboard_to_staff(event):
    staff = factories.make_user("admin", is_staff=True)

    assert logged_in(staff).get(f"/events/{event.pk}/dashboard").status_code == 200


def test_it_hides_the_dashboard_from_anyone_else(event, trainer):
    someone = factories.make_user("someone")

    for path in (f"/events/{event.pk}/dashboard", f"/events/{event.pk}/seats.csv", "/events/nope/dashboard"):
        response = logged_in(someone).get(path)
        assert response.status_code == 404, path
        assert "No such workshop" in response.content.decode()


def test_it_sends_a_visitor_who_is_not_logged_in_to_the_login(event):
    for path in (f"/events/{event.pk}/dashboard", f"/events/{event.pk}/seats.csv"):
        response = APIClient().get(path)

        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


def test_a_trainer_who_is_not_staff_signs_in_and_lands_on_the_dashboard(event):
    ada = factories.make_user("ada", password="correct horse battery")
    Event.objects.filter(pk=event.pk).update(owner=ada)
    browser = Client()
    path = f"/events/{event.pk}/dashboard"

    page = browser.get(f"/accounts/login/?next={path}")
    wrong = browser.post("/accounts/login/", {"username": "ada", "password": "wrong", "next": path})
    right = browser.post("/accounts/login/", {"username": "ada", "password": "correct horse battery", "next": path})

    assert page.status_code == 200 and b"Sign in" in page.content
    assert wrong.status_code == 200 and b"correct username and password" in wrong.content
    assert right.status_code == 302 and right["Location"] == path
    assert browser.get(path).status_code == 200


def test_it_downloads_the_seats_as_csv_with_the_dashboards_columns(event, trainer):
    session_id = join(APIClient(), event, '=HYPERLINK("http://evil")').json()["session_id"]
    join(APIClient(), event, "Grace")

    response = logged_in(trainer).get(f"/events/{event.pk}/seats.csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "Learner",
        "Session",
        "Session status",
        "Instance status",
        "Step",
        "Last activity",
        "Last check",
        "Expires",
    ]
    assert rows[1][:5] == ['\'=HYPERLINK("http://evil")', session_id, "open", "pending", "done"]
    assert rows[2][0] == "Grace"
    assert len(rows) == 3


def test_it_answers_the_seats_as_json_to_the_trainer_only(event, trainer):
    session_id = join(APIClient(), event, "Ada").json()["session_id"]

    response = logged_in(trainer).get(f"/events/{event.pk}/seats")

    assert response.status_code == 200
    body = response.json()
    assert body["event"] == {
        "id": event.pk,
        "title": event.title,
        "template": event.template_id,
        "starts_at": body["event"]["starts_at"],
        "ends_at": body["event"]["ends_at"],
        "seats": 3,
        "seats_taken": 1,
    }
    [seat] = body["seats"]
    assert seat["name"] == "Ada" and seat["session_id"] == session_id
    assert seat["session_status"] == "open" and seat["instance_status"] == "pending"
    assert seat["progress"] == "done" and seat["last_check"] is None
    assert seat["terminal_url"] == f"http://testserver/p/{session_id}"
    for client in (APIClient(), logged_in(factories.make_user("other"))):
        refused = client.get(f"/events/{event.pk}/seats")
        assert refused.status_code == 404
        assert refused.json()["error"] == "event_not_found"
    assert logged_in(trainer).get("/events/nope/seats").status_code == 404
    assert logged_in(trainer).delete(f"/events/{event.pk}/seats").status_code == 405


# --- Extend all, close all ---------------------------------------------------------------


def test_it_extends_every_open_seat_and_says_which_it_left(event, trainer):
    ids = [join(APIClient(), event, name).json()["session_id"] for name in ("Ada", "Grace", "Linus")]
    at_max = Session.objects.get(pk=ids[1])
    Session.objects.filter(pk=ids[1]).update(expires_at=at_max.latest_expiry)
    Session.objects.filter(pk=ids[2]).update(status=Session.Status.CLOSED)
    before = Session.objects.get(pk=ids[0]).expires_at

    response = logged_in(trainer).post(f"/events/{event.pk}/extend", {"duration": 600}, format="json")

    assert response.status_code == 200
    assert response.json()["changed"] == [ids[0]]
    assert [(item["session_id"], item["error"]) for item in response.json()["unchanged"]] == [(ids[1], "cannot_extend")]
    assert Session.objects.get(pk=ids[0]).expires_at > before


def test_it_closes_every_open_seat(event, trainer):
    ids = [join(APIClient(), event, name).json()["session_id"] for name in ("Ada", "Grace")]

    response = logged_in(trainer).post(f"/events/{event.pk}/close")

    assert response.status_code == 200
    assert sorted(response.json()["changed"]) == sorted(ids)
    assert set(Session.objects.values_list("status", flat=True)) == {"closed"}
    assert Seat.objects.filter(event=event).count() == 2


def test_it_lets_no_one_else_extend_or_close_the_seats(event, trainer):
    session_id = join(APIClient(), event, "Ada").json()["session_id"]
    other_trainer = factories.make_user("other")
    factories.make_event(template=event.template, owner=other_trainer)

    for client in (APIClient(), logged_in(other_trainer)):
        assert client.post(f"/events/{event.pk}/extend", {}, format="json").status_code == 404
        assert client.post(f"/events/{event.pk}/close").status_code == 404
    assert Session.objects.get(pk=session_id).status == "open"


def test_it_needs_the_csrf_token_for_a_trainers_write_by_cookie(event, trainer):
    join(APIClient(), event, "Ada")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(trainer)

    response = client.post(f"/events/{event.pk}/close")

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert set(Session.objects.values_list("status", flat=True)) == {"open"}


# --- The pool prepared ahead of an event ------------------------------------------------------


def test_it_prepares_a_session_per_free_seat_of_an_event_about_to_start(settings):
    settings.PLAYGROUND_EVENT_PREPARE_AHEAD = 30 * 60
    template = factories.make_template("soon", prepared=2)
    event = factories.make_event(template=template, starts_in=timedelta(minutes=10), seats=5)
    events.event_join(invite_code=event.invite_code, name="Ada", browser_key="k")  # one seat taken
    factories.make_event(template=template, starts_in=timedelta(minutes=40), seats=7)  # not yet
    factories.make_event(template=template, starts_in=timedelta(hours=-3), seats=7)  # ended
    quiet = factories.make_template("quiet")
    factories.make_event(template=quiet, starts_in=timedelta(minutes=-10), seats=3)  # under way

    targets = {template.slug: target for template, target in prepared_targets().items()}

    assert targets == {"soon": 2 + 4, "quiet": 3}


def test_it_prepares_nothing_more_for_a_full_event():
    template = factories.make_template("full")
    event = factories.make_event(template=template, seats=1)
    events.event_join(invite_code=event.invite_code, name="Ada", browser_key="k")

    assert prepared_targets() == {}


def test_it_keeps_a_templates_target_within_what_the_host_runs(settings):
    settings.PLAYGROUND_MAX_SESSIONS = 10
    template = factories.make_template("big", prepared=4)
    factories.make_event(template=template, seats=200)

    assert prepared_targets() == {template: 10}


# --- Concurrency (PostgreSQL) -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_gives_exactly_its_seats_to_thirty_learners_joining_at_once():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time; the PostgreSQL run races the row lock")
    event = factories.make_event(seats=7)
    start = threading.Barrier(30)
    answers: list[str] = []

    def learner(number: int) -> None:
        from django.db import connections

        try:
            start.wait()
            events.event_join(invite_code=event.invite_code, name=f"learner {number}", browser_key=f"browser-{number}")
            answers.append("seat")
        except EventFull:
            answers.append("full")
        except Exception as exc:  # any other failure shows in the assertion below
            answers.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=learner, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(answers) == ["full"] * 23 + ["seat"] * 7
    assert Seat.objects.filter(event=event).count() == 7
    assert Session.objects.filter(seat__event=event).count() == 7


def test_it_refuses_through_the_service_with_the_errors_the_api_answers():
    early = factories.make_event(starts_in=timedelta(hours=1))

    with pytest.raises(EventNotOpen):
        events.event_join(invite_code=early.invite_code, name="Ada", browser_key="k")
