"""The OpenAPI description of the workshop routes (applied when the app starts, see labs.apps).

Error examples are built from the domain errors, as in sessions_app.schema.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema

from labs.events_serializers import EventJoinedSerializer, EventJoinSerializer, EventSeatsSerializer, OutcomeSerializer
from labs.events_views import EventJoinViewSet, EventViewSet
from sessions_app import errors
from sessions_app.schema import INVALID, MALFORMED, UNSUPPORTED_MEDIA_TYPE, _domain_example, _errors, _example
from sessions_app.serializers import SessionExtendSerializer

EVENT_ID = OpenApiParameter(
    "id", str, OpenApiParameter.PATH, description="The event's id (in its dashboard's address)."
)
EVENT_NOT_FOUND = _errors(
    "No such event, or the caller is not its trainer nor staff (`event_not_found`): the same answer either way.",
    _domain_example(errors.EventNotFound, "No such event, or not yours"),
)
TRAINER_WRITE_REFUSED = _errors(
    "The request came from another site's page (`cross_site_request`), or a cookie-authenticated write lacks "
    "the CSRF token (`permission_denied`).",
    _domain_example(errors.CrossSiteRequest, "From another site's page"),
    _example("No CSRF token", "permission_denied", "CSRF Failed: CSRF token missing."),
)
TRAINER_ONLY = (
    " Only for the event's trainer (its owner) and staff, logged in (Django's session cookie, or "
    "`Authorization: Token <key>`); anyone else gets `404`, as for an unknown event."
)

extend_schema(
    operation_id="events_join",
    summary="Join a workshop",
    description=(
        "Takes a seat in the workshop of the invite and opens the learner's session of its template, as "
        "`POST /sessions` does; it lasts until the workshop ends, within its playground's maximum duration. "
        "Joining opens 15 minutes before the workshop starts and closes when it ends. A learner who joined "
        "before (the same logged-in user, or the same browser) gets their open session back (`200`, with "
        "`access_token` null); one whose session ended gets a new one on the same seat. Each workshop has "
        "`seats` seats: past them, `409` `event_full`."
    ),
    tags=["events"],
    request=EventJoinSerializer,
    examples=[OpenApiExample("join", value={"invite": "Zk3q9yQy3n0n7xV3Vb2kNw", "name": "Ada"}, request_only=True)],
    responses={
        201: EventJoinedSerializer,
        200: EventJoinedSerializer,
        400: _errors(
            "A malformed body, or the workshop's template is not one this user may use (`template_not_allowed`).",
            _domain_example(errors.TemplateNotAllowed, "The template's playground is not for you"),
            INVALID,
            MALFORMED,
        ),
        401: _errors(
            "Only with PLAYGROUND_REQUIRE_LOGIN: the caller is not logged in and sent no API token.",
            _example("Not logged in", "not_authenticated", "Authentication credentials were not provided."),
        ),
        403: _errors(
            "The request came from another site's page (`cross_site_request`).",
            _domain_example(errors.CrossSiteRequest, "From another site's page"),
        ),
        404: _errors(
            "No workshop has this invite (`event_not_found`).", _domain_example(errors.EventNotFound, "No such invite")
        ),
        409: _errors(
            "The workshop is not open for joining now (`event_not_open`), or every seat is taken (`event_full`).",
            _domain_example(
                errors.EventNotOpen,
                "Not yet",
                "This workshop opens for joining at 2026-03-02T08:45+00:00, 15 minutes before it starts.",
            ),
            _domain_example(errors.EventFull, "Full"),
        ),
        413: _errors(
            "The body is larger than the API accepts.",
            _example("Too large", "request_too_large", "The request body is larger than the API accepts."),
        ),
        415: UNSUPPORTED_MEDIA_TYPE,
        429: _errors(
            "The learner (their user, or their browser) joined too often (`throttled`): each join may open a "
            "session, as `POST /sessions` does. The `Retry-After` header says how many seconds to wait.",
            _example("Too fast", "throttled", "Request was throttled. Expected available in 42 seconds."),
        ),
        503: _errors(
            "The Docker host runs as many sessions as it may (`out_of_capacity`), or a server the platform needs "
            "is out of reach (`database_unavailable`, `broker_unavailable`); no seat was taken. `Retry-After` says "
            "how many seconds to wait.",
            _domain_example(errors.OutOfCapacity, "Out of capacity"),
        ),
    },
)(EventJoinViewSet.join)

extend_schema(
    operation_id="events_seats",
    summary="A workshop's seats",
    description=(
        "The workshop, and each seat in the order taken: its learner's name, session and instance status, the "
        "step they are at (the first whose check has not passed; step n+1 opens once step n has no check or "
        "passed it), their last terminal input and their latest check." + TRAINER_ONLY
    ),
    tags=["events"],
    parameters=[EVENT_ID],
    responses={200: EventSeatsSerializer, 404: EVENT_NOT_FOUND},
)(EventViewSet.seats)

extend_schema(
    operation_id="events_extend",
    summary="Extend every seat's session",
    description=(
        "Extends each open session of the workshop's seats as `POST /sessions/{id}/extend` would, by `duration` "
        "seconds (the playground's default duration when the body is empty), never beyond the playground's "
        "maximum lifetime; a session that lasts as long as it may already is left as it is (`unchanged`)."
        + TRAINER_ONLY
    ),
    tags=["events"],
    parameters=[EVENT_ID],
    request=SessionExtendSerializer,
    responses={
        200: OutcomeSerializer,
        400: _errors("A malformed body.", INVALID, MALFORMED),
        403: TRAINER_WRITE_REFUSED,
        404: EVENT_NOT_FOUND,
        415: UNSUPPORTED_MEDIA_TYPE,
    },
)(EventViewSet.extend)

extend_schema(
    operation_id="events_close",
    summary="Close every seat's session",
    description=(
        "Closes each open session of the workshop's seats. The seats stay taken: a learner who joins again "
        "while the workshop is open gets a new session on theirs." + TRAINER_ONLY
    ),
    tags=["events"],
    parameters=[EVENT_ID],
    request=None,
    responses={200: OutcomeSerializer, 403: TRAINER_WRITE_REFUSED, 404: EVENT_NOT_FOUND},
)(EventViewSet.close)
