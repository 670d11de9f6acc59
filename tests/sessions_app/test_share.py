"""DELETE /sessions/{id}/shares/{share id}: revoke a share link."""

import pytest

from sessions_app.models import Share

pytestmark = pytest.mark.django_db


@pytest.fixture
def share_id(api, session_id) -> str:
    return api.post(f"/sessions/{session_id}/shares", {"mode": "read-only"}, format="json").json()["id"]


def test_it_revokes_a_share_link_and_twice_is_harmless(api, session_id, share_id):
    assert api.delete(f"/sessions/{session_id}/shares/{share_id}").status_code == 204
    revoked_at = Share.objects.get(pk=share_id).revoked_at
    assert api.delete(f"/sessions/{session_id}/shares/{share_id}/").status_code == 204

    assert revoked_at is not None
    assert Share.objects.get(pk=share_id).revoked_at == revoked_at
    assert api.get(f"/sessions/{session_id}/shares").json()[0]["active"] is False


def test_it_answers_404_for_an_unknown_share_or_session(api, session_id, share_id):
    unknown = api.delete(f"/sessions/{session_id}/shares/nosuchshare")

    assert unknown.status_code == 404
    assert unknown.json()["error"] == "share_not_found"
    assert api.delete(f"/sessions/{'d' * 32}/shares/{share_id}").status_code == 404
    assert Share.objects.get(pk=share_id).revoked_at is None


def test_it_refuses_other_methods(api, session_id, share_id):
    response = api.get(f"/sessions/{session_id}/shares/{share_id}")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
