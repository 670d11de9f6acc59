"""JSON answers for errors raised outside the API's own views."""

from django.http import JsonResponse

from sessions_app.errors import error_body


def bad_request(request, exception=None):
    return JsonResponse(error_body("bad_request", "The request could not be understood."), status=400)


def not_found(request, exception=None):
    return JsonResponse(error_body("not_found", "There is nothing at this address."), status=404)


def server_error(request):
    return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
