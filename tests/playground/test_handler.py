"""playground.handler: a sync view's request in one call to a thread of a fixed pool, async views
and static files beside the event loop, and no thread made per request."""

import asyncio
import contextlib
import gc
import threading
import types

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request

from playground.handler import PlaygroundASGIHandler
from tests.factories import make_session
from tests.support import handler_urls

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def handler(settings):
    settings.ROOT_URLCONF = "tests.support.handler_urls"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.support.handler_urls.NoteThread"]
    settings.PLAYGROUND_WEB_THREADS = 2
    made = PlaygroundASGIHandler()
    yield made
    made.threads.shutdown()
    made.rest_thread.shutdown()


async def get(handler, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await asyncio.wait_for(client.get(path), timeout=10)


async def test_a_sync_views_middleware_and_view_run_in_one_thread_of_the_pool(handler):
    answer = await get(handler, "/sync")

    assert answer.status_code == 200
    ran = answer.json()
    assert ran["view"].startswith("web_")
    assert ran["middleware"] == ran["view"]


async def test_the_api_answers_beside_requests_that_hold_their_thread_for_long(handler):
    handler_urls.released.clear()
    long_one = asyncio.ensure_future(get(handler, "/long"))
    await asyncio.sleep(0.2)
    try:
        beside = await get(handler, "/sync")
    finally:
        handler_urls.released.set()
    held = (await long_one).json()["view"]

    assert beside.status_code == 200
    assert beside.json()["view"] != held  # a thread made for it, the pool's other


async def test_an_async_view_and_a_static_file_do_not_wait_for_the_pool(handler):
    busy = threading.Event()
    held = [handler.threads.submit(busy.wait) for _ in range(2)]  # every thread of the pool
    try:
        view = await get(handler, "/async")
        static = await get(handler, "/static/terminals/app.css")
    finally:
        busy.set()
    for done in held:
        done.result(timeout=10)

    assert view.status_code == 200
    assert view.json()["view"] == threading.current_thread().name  # the event loop's
    assert static.status_code == 200 and b"--term-background" in static.content


async def test_no_request_waits_for_the_thread_where_the_terminals_database_calls_run(handler):
    # The terminals' database calls (channels' database_sync_to_async) run in
    # asgiref's one thread for sync code; one of them waiting (for a database
    # that is away) holds it.
    away = threading.Event()
    waiting = asyncio.ensure_future(sync_to_async(away.wait)())
    await asyncio.sleep(0.1)
    try:
        answers = [await get(handler, path) for path in ("/sync", "/async", "/static/terminals/app.css")]
    finally:
        away.set()
        await waiting

    assert [answer.status_code for answer in answers] == [200, 200, 200]


async def test_requests_start_no_thread_of_their_own(handler, monkeypatch):
    started: list[str] = []
    start = threading.Thread.start

    def noted_start(thread):
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", noted_start)
    for _ in range(10):
        for path in ("/sync", "/async"):
            assert (await get(handler, path)).status_code == 200

    # Only the pool's two threads and the one for the rest, once each.
    assert len(started) <= 3
    assert all(name.startswith(("web_", "web-rest_")) for name in started), started


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="Django never closes an in-memory SQLite database's connection"
)
async def test_a_thread_hands_its_database_connection_back_after_each_request(handler, settings):
    assert (await get(handler, "/sync")).status_code == 200
    assert (await get(handler, "/sync")).status_code == 200

    held = [handler.threads.submit(lambda: connection.connection is not None).result() for _ in range(4)]
    assert held == [False] * 4


@pytest.fixture
def app(settings):
    """The handler on the project's own URLconf and middleware."""
    made = PlaygroundASGIHandler()
    yield made
    made.threads.shutdown()
    made.rest_thread.shutdown()


@contextlib.contextmanager
def cyclic_garbage():
    """What the cyclic collector finds unreachable meanwhile (and would have had to free)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list = []
    try:
        yield found
        gc.collect()
        found += gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_a_status_poll_leaves_nothing_for_the_cyclic_collector(app):
    # Each knot the collector must untie costs a full pass of it, which
    # holds the event loop: the request, its DRF view and serializer, and
    # the session and instance shown must go as soon as the answer is sent.
    token = "poll-token-" + "x" * 40
    session = await sync_to_async(make_session)(instance_status="running", access_token=token)
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
        assert (await client.get(f"/sessions/{session.pk}")).status_code == 200  # what is loaded once is loaded
        with cyclic_garbage() as garbage:
            statuses = [(await client.get(f"/sessions/{session.pk}")).status_code for _ in range(10)]

    assert statuses == [200] * 10
    kinds = {type(each) for each in garbage}
    left = {kind.__name__ for kind in kinds if issubclass(kind, HttpRequest | HttpResponseBase | Request | Model)}
    frames = {each.f_code.co_qualname for each in garbage if isinstance(each, types.FrameType)}
    assert left == set(), left
    assert not {name for name in frames if "ASGIHandler" in name}, frames
