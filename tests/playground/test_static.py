"""Static files and the health probes take Django's async chain
(playground.handler), which stays on the event loop: a synchronous middleware
would make Django run the whole chain after it in a thread."""

import pytest
from django.conf import settings
from django.utils.module_loading import import_string


def test_every_middleware_runs_on_the_event_loop():
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]

    assert sync_only == []


async def test_static_files_are_served_under_asgi(async_client):
    response = await async_client.get("/static/terminals/app.css")

    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert b"--" in body  # the theme's CSS variables


@pytest.mark.django_db
async def test_views_still_answer_behind_the_static_middleware(async_client):
    response = await async_client.get("/healthz")

    assert response.status_code == 200
