from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from sessions_app.models import Instance, Playground, new_session_id
from tests.factories import make_instance, make_session

pytestmark = pytest.mark.django_db


def test_it_has_a_default_playground_after_migrate():
    playground = Playground.objects.get(pk="default")

    assert playground.default_duration == timedelta(hours=2)
    assert playground.max_duration == timedelta(hours=4)
    assert playground.pids_limit == 1000
    assert playground.image == "playground-dind:latest"


def test_it_refuses_a_second_instance_row_in_the_database():
    session = make_session(instance_status="pending")

    with pytest.raises(IntegrityError), transaction.atomic():
        make_instance(session=session, name="node2")

    assert Instance.objects.filter(session=session).count() == 1


def test_it_makes_unguessable_url_safe_session_ids():
    ids = {new_session_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in ids)
    assert make_session().pk != make_session().pk
