"""Domain errors and the one place that turns errors into JSON responses.

Domain errors carry a short machine-readable reason, a message for the user
and, where it differs, a message for the log. They know nothing of HTTP: the
exception handler below maps each kind to a status code.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class PlaygroundError(Exception):
    reason = "playground_error"
    message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, log_message: str | None = None) -> None:
        self.message = message or self.message
        self.log_message = log_message or self.message
        super().__init__(self.log_message)


class InvalidRequest(PlaygroundError):
    reason = "invalid_request"
    message = "The request is not valid."


class PlaygroundNotAllowed(InvalidRequest):
    """No such playground, or not for this user: the same answer either way."""

    reason = "playground_not_allowed"
    message = "There is no such playground that you may use."


class TemplateNotAllowed(InvalidRequest):
    """No such template, or its playground is not for this user: the same answer either way."""

    reason = "template_not_allowed"
    message = "There is no such template that you may use."


class ImageNotAllowed(InvalidRequest):
    reason = "image_not_allowed"
    message = "This playground does not offer that image."


class InvalidPath(InvalidRequest):
    reason = "invalid_path"
    message = "The path is not valid."


class PathNotAllowed(InvalidRequest):
    """A path outside the roots files may be read and written in, or a symbolic link leading out of them."""

    reason = "path_not_allowed"
    message = "Only the learner's home and /tmp can be reached; this path leads elsewhere."


class FileNotFound(PlaygroundError):
    reason = "file_not_found"
    message = "There is no such file or directory in the instance."


class FilePermissionDenied(PlaygroundError):
    reason = "file_permission_denied"
    message = "The learner may not read or write this path."


class FileTransferFailed(PlaygroundError):
    reason = "file_transfer_failed"
    message = "The files could not be written in the instance."


class UploadTooLarge(PlaygroundError):
    reason = "upload_too_large"
    message = "The upload is larger than the playground accepts."


class SessionNotFound(PlaygroundError):
    reason = "session_not_found"
    message = "There is no such session."


class InstanceNotFound(PlaygroundError):
    reason = "instance_not_found"
    message = "This session has no instance of that name."


class NotOwner(PlaygroundError):
    reason = "not_owner"
    message = "Only the session's owner may do this; a share link lets you watch or type, nothing more."


class ShareNotFound(PlaygroundError):
    reason = "share_not_found"
    message = "There is no such share link, or it has expired or been revoked."


class CrossSiteRequest(PlaygroundError):
    reason = "cross_site_request"
    message = "This request came from another site's page; the playground takes changes only from its own pages."


class SessionHasNoInstance(PlaygroundError):
    reason = "no_instance"
    message = "This session has no instance."


class InstanceNotRunning(PlaygroundError):
    reason = "instance_not_running"
    message = "The session's instance is not running; wait until it runs."


class SessionClosed(PlaygroundError):
    reason = "session_closed"
    message = "This session is closed."


class CannotExtend(PlaygroundError):
    reason = "cannot_extend"
    message = "The session already lasts as long as it may."


class RetryLater(PlaygroundError):
    """Refused for now: `retry_after` seconds later it may be accepted (the Retry-After header)."""

    def __init__(self, message: str | None = None, *, retry_after: int, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class TooManySessions(RetryLater):
    reason = "too_many_sessions"
    message = "You have as many open sessions as you may; close one first."


class TooManyCommands(RetryLater):
    reason = "too_many_commands"
    message = "This session runs as many commands at once as it may; wait for one to end."


class OutOfCapacity(RetryLater):
    reason = "out_of_capacity"
    message = "The playground is full right now; please try again in a few minutes."


class ServiceUnavailable(RetryLater):
    """A server the platform needs (its database, broker or cache) is out of
    reach or saturated for now; nothing was changed, and trying again soon will do."""

    reason = "service_unavailable"
    message = "The playground is overloaded or restarting; please try again in a few seconds."

    def __init__(self, message: str | None = None, *, reason: str, retry_after: int = 2, **kwargs) -> None:
        super().__init__(message, retry_after=retry_after, **kwargs)
        self.reason = reason


def as_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The ServiceUnavailable an exception amounts to, if it is a passing outage of a server."""
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    if isinstance(exc, ServiceUnavailable):
        return exc
    if isinstance(exc, OperationalError | InterfaceError):
        return ServiceUnavailable(reason="database_unavailable", log_message=f"database: {exc}")
    if isinstance(exc, BrokerError | RedisConnectionError | RedisTimeout):
        return ServiceUnavailable(reason="broker_unavailable", retry_after=5, log_message=f"broker or cache: {exc}")
    return None


class PortNotListening(PlaygroundError):
    reason = "port_not_listening"
    message = "Nothing in the session's instance listens on that port."


class PortUnreachable(PlaygroundError):
    reason = "port_unreachable"
    message = "The server on that port of the instance did not answer."


class SessionHasNoSteps(PlaygroundError):
    reason = "no_steps"
    message = "This session is not of a guided lab: it has no steps."


class StepNotFound(PlaygroundError):
    reason = "step_not_found"
    message = "The session's lab has no such step."


class StepLocked(PlaygroundError):
    reason = "step_locked"
    message = "This step opens once the steps before it are done."


class StepHasNoCheck(PlaygroundError):
    reason = "no_check"
    message = "This step has nothing to check."


class StepHasNoSolve(PlaygroundError):
    reason = "no_solve"
    message = "This step has no solution to run."


class EventNotFound(PlaygroundError):
    """No such workshop, or not the caller's to run: the same answer either way."""

    reason = "event_not_found"
    message = "There is no such workshop."


class EventNotOpen(PlaygroundError):
    reason = "event_not_open"
    message = "This workshop is not open for joining now."


class EventFull(PlaygroundError):
    reason = "event_full"
    message = "Every seat of this workshop is taken."


class SessionAlreadyHasInstance(PlaygroundError):
    reason = "session_already_has_instance"
    message = "This session already has an instance. Only one instance per session is allowed."


_STATUS_BY_ERROR: list[tuple[type[PlaygroundError], int]] = [
    (InvalidRequest, status.HTTP_400_BAD_REQUEST),
    (SessionNotFound, status.HTTP_404_NOT_FOUND),
    (FileNotFound, status.HTTP_404_NOT_FOUND),
    (FilePermissionDenied, status.HTTP_403_FORBIDDEN),
    (FileTransferFailed, status.HTTP_409_CONFLICT),
    (UploadTooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (ShareNotFound, status.HTTP_404_NOT_FOUND),
    (NotOwner, status.HTTP_403_FORBIDDEN),
    (CrossSiteRequest, status.HTTP_403_FORBIDDEN),
    (InstanceNotFound, status.HTTP_404_NOT_FOUND),
    (SessionHasNoInstance, status.HTTP_404_NOT_FOUND),
    (SessionClosed, status.HTTP_409_CONFLICT),
    (InstanceNotRunning, status.HTTP_409_CONFLICT),
    (CannotExtend, status.HTTP_409_CONFLICT),
    (TooManySessions, status.HTTP_429_TOO_MANY_REQUESTS),
    (TooManyCommands, status.HTTP_429_TOO_MANY_REQUESTS),
    (OutOfCapacity, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ServiceUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (SessionAlreadyHasInstance, status.HTTP_409_CONFLICT),
    (PortNotListening, status.HTTP_404_NOT_FOUND),
    (PortUnreachable, status.HTTP_502_BAD_GATEWAY),
    (SessionHasNoSteps, status.HTTP_404_NOT_FOUND),
    (StepNotFound, status.HTTP_404_NOT_FOUND),
    (StepLocked, status.HTTP_409_CONFLICT),
    (StepHasNoCheck, status.HTTP_409_CONFLICT),
    (StepHasNoSolve, status.HTTP_409_CONFLICT),
    (EventNotFound, status.HTTP_404_NOT_FOUND),
    (EventNotOpen, status.HTTP_409_CONFLICT),
    (EventFull, status.HTTP_409_CONFLICT),
]

_DRF_REASONS: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.ParseError: "malformed_request",
    drf_exceptions.ValidationError: "invalid_request",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.Throttled: "throttled",
}


def status_of(exc: PlaygroundError) -> int | None:
    """The HTTP status that answers a domain error (None for one no request should meet)."""
    return next((code for error_class, code in _STATUS_BY_ERROR if isinstance(exc, error_class)), None)


def error_body(reason: str, message: str, **extra) -> dict:
    return {"error": reason, "message": message, **extra}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Answer every error with `{"error": reason, "message": text}`."""
    exc = as_unavailable(exc) or exc
    if isinstance(exc, PlaygroundError) and (code := status_of(exc)) is not None:
        (logger.warning if code >= 500 else logger.info)("%s: %s", exc.reason, exc.log_message)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RetryLater) else None
        return Response(error_body(exc.reason, exc.message), status=code, headers=headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request body is larger than the API accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    reason = next((r for cls, r in _DRF_REASONS.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body(reason, _validation_message(exc.detail), details=exc.detail)
    else:
        response.data = error_body(reason, str(exc.detail))
    return response


def _validation_message(detail) -> str:
    """The first problem found, phrased for a person."""
    if isinstance(detail, dict):
        for field, problems in detail.items():
            first = _validation_message(problems)
            return first if field == "non_field_errors" else f"{field}: {first}"
    if isinstance(detail, list) and detail:
        return _validation_message(detail[0])
    return str(detail)
