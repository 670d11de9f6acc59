"""A URLconf for the tests of playground.handler: views that say which thread ran them."""

import threading

from django.http import JsonResponse
from django.urls import path
from django.utils.deprecation import MiddlewareMixin

from sessions_app.models import Session


class NoteThread(MiddlewareMixin):
    """Middleware of Django's own kind (either way): notes the thread of its process_request."""

    def process_request(self, request):
        request.middleware_thread = threading.current_thread().name


def sync_view(request):
    Session.objects.exists()  # takes this thread's database connection
    return JsonResponse({"view": threading.current_thread().name, "middleware": request.middleware_thread})


released = threading.Event()  # what a long view waits for


def long_view(request):
    """As a command run with ?wait=1 or an upload: holds its thread until released."""
    released.wait(timeout=30)
    return JsonResponse({"view": threading.current_thread().name})


async def async_view(request):
    return JsonResponse({"view": threading.current_thread().name})


urlpatterns = [path("sync", sync_view), path("long", long_view), path("async", async_view)]
