"""JSON answers for errors raised outside the API's own views."""

from django.http import JsonResponse


def bad_request(request, exception=None):
    return JsonResponse({"error": "bad_request", "message": "The request could not be understood."}, status=400)


def not_found(request, exception=None):
    return JsonResponse({"error": "not_found", "message": "There is nothing at this address."}, status=404)


def server_error(request):
    return JsonResponse({"error": "server_error", "message": "Something went wrong on our side."}, status=500)
