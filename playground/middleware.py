"""Answers for what goes wrong outside the API's own views (which have
sessions_app.errors.api_exception_handler)."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import JsonResponse

from sessions_app.errors import as_unavailable, error_body


class ServiceUnavailableMiddleware:
    """A page or probe whose database (or cache) is out of reach answers 503
    with Retry-After, as the API does, rather than 500.

    Both sync and async, so that under ASGI it costs no hop to a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.get_response(request)

    async def __acall__(self, request):
        return await self.get_response(request)

    def process_exception(self, request, exception):
        unavailable = as_unavailable(exception)
        if unavailable is None:
            return None
        response = JsonResponse(error_body(unavailable.reason, unavailable.message), status=503)
        response["Retry-After"] = str(unavailable.retry_after)
        return response
