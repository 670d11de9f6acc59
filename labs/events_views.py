"""Workshops on the web: the API to join one and to run it, the join page and the trainer's dashboard.

Joining needs only the invite. Everything else is for the event's trainer
(its owner) and staff; anyone else is told there is no such event.
"""

import csv

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from labs import events
from labs.events_serializers import EventJoinSerializer, OutcomeSerializer, event_seats_data
from playground.clients import request_client
from sessions_app import access, selectors
from sessions_app.access import Access
from sessions_app.errors import EventNotFound
from sessions_app.models import hash_secret
from sessions_app.serializers import SessionExtendSerializer, SessionSerializer
from sessions_app.views import PlaygroundAPIView, SessionCreationThrottle

LOGIN_URL = "/accounts/login/"  # where the dashboard sends a trainer who is not logged in
# The dashboard's columns, and the CSV's: a header, and the cell of a seat (labs.events.SeatRow).
COLUMNS = [
    ("Learner", lambda row: row.name),
    ("Session", lambda row: row.session_id),
    ("Session status", lambda row: row.session_status),
    ("Instance status", lambda row: row.instance_status or ""),
    ("Step", lambda row: row.progress),
    ("Last activity", lambda row: _when(row.last_activity_at)),
    ("Last check", lambda row: _check(row.last_check)),
    ("Expires", lambda row: _when(row.expires_at)),
]


def _when(moment) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds") if moment else ""


def _check(run) -> str:
    if run is None:
        return ""
    return f"step {run.step.position} {'passed' if run.passed else 'failed'} at {_when(run.ran_at)}"


# --- API --------------------------------------------------------------------------------


class EventJoinThrottle(SessionCreationThrottle):
    """PLAYGROUND_SESSION_RATE joins per learner: their user, or their browser (not their address, which a
    room shares). A learner who closes their session and joins again opens a new one each time; a caller
    with neither takes a new seat each time, which the seats bound."""

    scope = "event-join"

    def get_cache_key(self, request: Request, view) -> str | None:
        if request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        elif browser_id := access.browser_id(request):
            ident = f"browser-{hash_secret(browser_id)}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class EventJoinViewSet(PlaygroundAPIView):
    """`/events/join`: a learner takes a seat."""

    throttle_classes = [EventJoinThrottle]

    def get_permissions(self):
        return [IsAuthenticated()] if settings.PLAYGROUND_REQUIRE_LOGIN else [AllowAny()]

    def join(self, request: Request) -> Response:
        # As opening a session: a JSON body, which another site's form cannot send.
        if request.content_type.split(";")[0].strip() != "application/json":
            raise UnsupportedMediaType(request.content_type or "(none)")
        body = EventJoinSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        browser_id = access.browser_id(request) or access.new_browser_id()
        joined = events.event_join(
            invite_code=body.validated_data["invite"],
            name=body.validated_data["name"],
            owner=request.user,
            browser_key=hash_secret(browser_id),
            client_address=request_client(request),
            client_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        session = selectors.session_get(session_id=joined.session.pk)
        data = SessionSerializer(session, context={"request": request, "access": Access.OWNER}).data
        data["access_token"] = joined.access_token
        response = Response(data, status=status.HTTP_200_OK if joined.rejoined else status.HTTP_201_CREATED)
        access.set_browser_cookie(response, browser_id)
        return response


class EventViewSet(PlaygroundAPIView):
    """`/events/{id}/...`: the trainer's view of the seats, and actions on all of them."""

    def seats(self, request: Request, event_id: str) -> Response:
        event = events.event_for_trainer(event_id=event_id, user=request.user)
        return Response(event_seats_data(request, event, events.event_seats(event=event)))

    def extend(self, request: Request, event_id: str) -> Response:
        event = events.event_for_trainer(event_id=event_id, user=request.user)
        body = SessionExtendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(OutcomeSerializer.of(events.event_extend_all(event=event, **body.validated_data)))

    def close(self, request: Request, event_id: str) -> Response:
        event = events.event_for_trainer(event_id=event_id, user=request.user)
        return Response(OutcomeSerializer.of(events.event_close_all(event=event)))


# --- Pages ------------------------------------------------------------------------------


@require_safe
@ensure_csrf_cookie
def join_page(request: HttpRequest, invite_code: str) -> HttpResponse:
    """`/e/<invite>`: the workshop, its seats left, and a name to join with (or the way back to one's seat)."""
    try:
        event = events.event_by_invite(invite_code)
    except EventNotFound:
        return render(request, "labs/event_not_found.html", status=404)
    browser_id = access.browser_id(request)
    seat = events.learner_seat(event, owner=request.user, browser_key=hash_secret(browser_id) if browser_id else "")
    now = timezone.now()
    refusal = events.join_refusal(event, seat=seat, now=now)
    context = {
        "event": event,
        "seats_left": max(0, event.seats - event.seat_set.count()),
        "refusal": refusal,
        "own_session": seat.session if refusal is None and events.holds_open_session(seat, now) else None,
    }
    return render(request, "labs/event_join.html", context)


@require_safe
@login_required(login_url=LOGIN_URL)
@ensure_csrf_cookie
def dashboard(request: HttpRequest, event_id: str) -> HttpResponse:
    """`/events/<id>/dashboard`: every seat, its learner's progress, and actions on all of them."""
    try:
        event = events.event_for_trainer(event_id=event_id, user=request.user)
    except EventNotFound:
        return render(request, "labs/event_not_found.html", status=404)
    rows = events.event_seats(event=event)
    context = {
        "event": event,
        "headers": [header for header, _ in COLUMNS],
        "rows": [(row, [cell(row) for _, cell in COLUMNS]) for row in rows],
        "join_url": request.build_absolute_uri(f"/e/{event.invite_code}"),
    }
    return render(request, "labs/event_dashboard.html", context)


@require_safe
@login_required(login_url=LOGIN_URL)
def seats_csv(request: HttpRequest, event_id: str) -> HttpResponse:
    """`/events/<id>/seats.csv`: the dashboard's table."""
    try:
        event = events.event_for_trainer(event_id=event_id, user=request.user)
    except EventNotFound:
        return render(request, "labs/event_not_found.html", status=404)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="seats-{event.pk}.csv"'
    writer = csv.writer(response)
    writer.writerow([header for header, _ in COLUMNS])
    for row in events.event_seats(event=event):
        writer.writerow([_inert(cell(row)) for _, cell in COLUMNS])
    return response


def _inert(cell: str) -> str:
    """A cell no spreadsheet runs as a formula: a learner chooses their own name."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
