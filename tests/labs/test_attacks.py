"""Attacks on guided labs and workshops that must fail: each test tries one."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labs.models import Seat
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
