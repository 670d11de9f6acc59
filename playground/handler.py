"""Django's ASGI handler, with a sync view's request in one call to a thread of a pool.

Django's own ASGI handler costs the event loop, for every request:
- two new threads: each request gets a ThreadSensitiveContext, whose first
  sync call starts a thread of its own (the loop waits for it to start), and
  whose end starts another to join the first;
- a dozen calls to that thread and back: Django's middleware (all able to
  run both ways) runs in async mode, each process_request, process_view and
  process_response as a call of its own.

Measured with bench/api.py, a `GET /sessions/{id}` cost the web process
5.8-7.0 ms of CPU, most of it in the event loop's thread, which all
terminals share. Here:
- a request for a sync view (the API, the pages, the admin) goes through the
  middleware as under WSGI, the whole chain and the view in one call to a
  thread of a pool, which then hands its database connection back (to
  psycopg's pool on PostgreSQL), as Django does at the end of every request.
  The pool makes a thread only when none is idle, up to
  PLAYGROUND_WEB_THREADS: a command run with `?wait=1` or an upload holds
  its thread for minutes, and the API must still answer beside them;
- the rest of a request's sync code (Django's request_started and
  request_finished signals, and the async chain's middleware) runs in one
  thread kept for it, not in asgiref's one thread for sync code, where the
  terminals' database calls run (and wait, while the database is away).
  Nothing there may wait on anything: every request passes through it.
The same request costs 3.6-4.7 ms.

Async views (the health probes) and static files take Django's async chain,
so that they never queue behind a sync view.
"""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections, reset_queries
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.urls import resolve

ENDED = "playground.ended"


def release(request: HttpRequest, response: HttpResponseBase) -> None:
    """Free a request that was answered now, rather than at the collector's next full pass.

    A request is a knot of reference cycles, which reference counting cannot
    free: its lazy `user` refers back to it, a DRF view and its response to
    each other, a serializer and its data, and related model instances (a
    session and its instance) to each other. Each status poll left some 150
    objects for the cyclic collector, whose full passes then took 140-560 ms,
    the event loop with them: every terminal's keystrokes waited. Once the
    response is sent and closed, nothing reads any of them again.
    """
    context = getattr(response, "renderer_context", None) or {}
    serializer = getattr(getattr(response, "data", None), "serializer", None)
    unlink(getattr(serializer, "instance", None))
    for knot in (request, response, context.get("view"), context.get("request"), serializer):
        if hasattr(knot, "__dict__"):
            knot.__dict__.clear()


def unlink(shown, seen: set[int] | None = None) -> None:
    """Empty the relation caches of the model instances a serializer showed, and of those they reach."""
    seen = set() if seen is None else seen
    if isinstance(shown, QuerySet):
        shown = shown._result_cache or []
    if isinstance(shown, list | tuple):
        for each in shown:
            unlink(each, seen)
    elif isinstance(shown, Model) and id(shown) not in seen:
        seen.add(id(shown))
        related = list(shown._state.fields_cache.values())
        shown._state.fields_cache.clear()
        for each in related:
            unlink(each, seen)


class PlaygroundASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()  # the async chain
        self.sync_chain = BaseHandler()
        self.sync_chain.load_middleware(is_async=False)
        self.threads = ThreadPoolExecutor(max_workers=settings.PLAYGROUND_WEB_THREADS, thread_name_prefix="web")
        self.rest_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-rest")
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    async def __call__(self, scope, receive, send) -> None:
        # Django's, with every request's context on the one thread kept for it.
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP, not {scope['type']}")
        try:
            async with ThreadSensitiveContext(executor=self.rest_thread):
                await self.handle(scope, receive, send)
        finally:
            if (ended := scope.pop(ENDED, None)) is not None:
                release(*ended)

    async def listen_for_disconnect(self, receive) -> None:
        # Django's raises RequestAborted, which its handle() then catches from
        # the task: the exception's traceback holds handle()'s frame, whose
        # `tasks` hold the task that holds the exception, and with that knot
        # the whole request. Ending is enough: handle() cancels the view when
        # this task ends first, whichever way it ends.
        message = await receive()
        if message["type"] != "http.disconnect":
            raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")  # as Django's

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        response = await super().run_get_response(request)
        request.scope[ENDED] = (request, response)
        return response

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        if self.takes_async_chain(request):
            return await super().get_response_async(request)
        return await sync_to_async(self.respond, thread_sensitive=False, executor=self.threads)(request)

    def respond(self, request: HttpRequest) -> HttpResponseBase:
        # What Django's request_started does for the view's thread (the
        # signal itself runs on the thread kept for the rest); its database
        # connection was handed back at the end of its last request.
        reset_queries()
        try:
            return self.sync_chain.get_response(request)
        finally:
            close_old_connections()  # this thread's: the next request here may be anyone's

    def takes_async_chain(self, request: HttpRequest) -> bool:
        if request.path_info.startswith(self.static_prefix):
            return True  # playground.static serves it beside the loop, never in a thread of the pool
        try:
            return iscoroutinefunction(resolve(request.path_info).func)
        except Exception:  # no such page (or a broken URLconf): the sync chain answers it as Django would
            return False
