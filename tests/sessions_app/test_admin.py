"""Admins manage sessions through the Django admin (logged-in staff, test client)."""

from datetime import timedelta

import pytest

from sessions_app.models import Instance, Session
from tests.factories import make_session

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sessions_app/session/"


def act(admin_client, run_on_commit, action: str, *session_ids: str):
    return run_on_commit(
        admin_client.post,
        CHANGELIST,
        {"action": action, "_selected_action": list(session_ids)},
        follow=True,
    )


def test_it_lists_sessions_with_their_instance(admin_client, session_id):
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert session_id in page
    assert "running" in page
    assert f"/p/{session_id}" in page  # the link to the session's terminal


def test_it_filters_and_searches(admin_client, session_id):
    make_session(status="closed")

    by_status = admin_client.get(CHANGELIST, {"status__exact": "open"}).content.decode()
    by_search = admin_client.get(CHANGELIST, {"q": session_id[:12]}).content.decode()

    assert session_id in by_status and "1 session" in by_status
    assert session_id in by_search


def test_it_closes_sessions_from_the_admin(admin_client, run_on_commit, session_id, fake_engine):
    response = act(admin_client, run_on_commit, "close_sessions", session_id)

    assert response.status_code == 200
    assert Session.objects.get(pk=session_id).status == "closed"
    assert Instance.objects.get(session_id=session_id).status == "terminated"
    assert fake_engine.containers == {}


def test_it_extends_sessions_from_the_admin(admin_client, run_on_commit, session_id):
    before = Session.objects.get(pk=session_id).expires_at

    act(admin_client, run_on_commit, "extend_sessions", session_id)

    session = Session.objects.get(pk=session_id)
    assert session.expires_at == min(before + timedelta(hours=2), session.created_at + timedelta(hours=4))


def test_it_reports_a_session_it_cannot_extend(admin_client, run_on_commit, session_id):
    session = Session.objects.get(pk=session_id)
    Session.objects.filter(pk=session_id).update(expires_at=session.created_at + timedelta(hours=4))

    response = act(admin_client, run_on_commit, "extend_sessions", session_id)

    assert "already lasts as long as it may" in response.content.decode()


def test_it_replaces_an_instance_from_the_admin(admin_client, run_on_commit, session_id, fake_engine):
    Instance.objects.filter(session_id=session_id).update(status="failed", error="boom", failure_reason="x")

    act(admin_client, run_on_commit, "reprovision_sessions", session_id)

    instance = Instance.objects.get(session_id=session_id)
    assert (instance.status, instance.error, instance.attempts) == ("running", "", 1)
    assert [call for call, _ in fake_engine.calls][-2:] == ["remove", "start"]


def test_it_shows_the_instance_read_only_on_the_session_page(admin_client, session_id):
    page = admin_client.get(f"{CHANGELIST}{session_id}/change/").content.decode()

    assert "playground-" + session_id in page  # the container name, shown
    assert 'name="instance-0-container_name"' not in page  # but not editable


def test_it_edits_a_playground(admin_client):
    page = admin_client.get("/admin/sessions_app/playground/default/change/")

    assert page.status_code == 200
    assert 'name="pids_limit"' in page.content.decode()


def test_it_keeps_the_admin_from_anonymous_users(client):
    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
