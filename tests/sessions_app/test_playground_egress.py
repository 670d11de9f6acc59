"""The playground's egress and preload_images fields: their migration and the admin that edits them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sessions_app.models import Playground
from tests.factories import make_playground

BEFORE = [("sessions_app", "0008_public_ports")]
AFTER = [("sessions_app", "0009_playground_egress_and_preload")]
CHANGE = "/admin/sessions_app/playground/{}/change/"


@pytest.mark.django_db(transaction=True)
def test_it_gives_existing_playgrounds_internet_egress_and_no_preloaded_images():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("sessions_app", "Playground")
    old.objects.create(pk="workshop")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)

    playground = Playground.objects.values("egress", "preload_images").get(pk="workshop")
    assert (playground["egress"], playground["preload_images"]) == ("internet", [])

    # Back to the latest schema, which the tests after this one expect.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_it_edits_egress_in_the_admin_and_shows_preload_images(admin_client):
    make_playground("workshop")
    page = admin_client.get(CHANGE.format("workshop")).content.decode()
    assert 'name="egress"' in page
    assert 'name="preload_images"' in page
    assert "Images prepared instances of this playground pull before anyone claims them" in page
    form = {
        "id": "workshop",
        "access": "everyone",
        "default_duration": "02:00:00",
        "max_duration": "04:00:00",
        "memory_limit_mb": "2048",
        "pids_limit": "1000",
        "cpu_limit": "1",
        "storage_size": "10G",
        "allowed_images": "[]",
        "preload_images": '["busybox:1.36"]',
        "egress": "mirror-only",
    }

    response = admin_client.post(CHANGE.format("workshop"), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    playground = Playground.objects.get(pk="workshop")
    assert (playground.egress, playground.preload_images) == ("mirror-only", ["busybox:1.36"])
    assert "the registry mirror and DNS only" in admin_client.get("/admin/sessions_app/playground/").content.decode()


@pytest.mark.django_db
def test_it_refuses_an_egress_it_does_not_know(admin_client):
    make_playground("workshop")
    form = {
        "id": "workshop",
        "access": "everyone",
        "default_duration": "02:00:00",
        "max_duration": "04:00:00",
        "memory_limit_mb": "2048",
        "pids_limit": "1000",
        "cpu_limit": "1",
        "storage_size": "10G",
        "allowed_images": "[]",
        "preload_images": "[]",
        "egress": "intranet",
    }

    response = admin_client.post(CHANGE.format("workshop"), form)

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert Playground.objects.get(pk="workshop").egress == "internet"
