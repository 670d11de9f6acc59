"""Workshops: learners join an event by its invite and each take a seat; its trainer follows them.

Joining opens JOIN_OPENS_BEFORE (15 minutes) before the event starts, so
that learners can settle in, and closes when it ends. A joiner's session is
of the event's template and lasts until the event ends, but never longer
than its playground's maximum duration; the trainer may extend every seat's
session (within that maximum) from the dashboard.

A learner is known again by their logged-in user or their browser's cookie:
joining twice gives back their open session, and one whose session ended
(closed, or expired) gets a new one on the same seat, so that a closed tab
does not cost the room a seat.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from labs.models import CheckRun, Event, Seat, Step, Template
from labs.steps import step_done
from sessions_app.errors import (
    CannotExtend,
    EventFull,
    EventNotFound,
    EventNotOpen,
    PlaygroundError,
    SessionClosed,
)
from sessions_app.models import Session, is_plain_name
from sessions_app.services import session_close, session_create, session_extend

logger = logging.getLogger(__name__)

JOIN_OPENS_BEFORE = timedelta(minutes=15)  # how long before an event starts its learners may join
OUTPUT_SHOWN = 500  # characters of a check's output the dashboard shows (its end)


class Joined(NamedTuple):
    session: Session
    access_token: str | None  # None when the learner had joined before: they own the session already
    rejoined: bool


# --- Joining ---------------------------------------------------------------------------


def join_window(event: Event) -> tuple[datetime, datetime]:
    """When learners may join the event: from JOIN_OPENS_BEFORE its start until its end."""
    return event.starts_at - JOIN_OPENS_BEFORE, event.ends_at


def event_by_invite(invite_code: str) -> Event:
    """The event of this invite, or EventNotFound."""
    event = None
    if is_plain_name(invite_code):  # an invite is URL-safe text: anything else (a NUL byte) is no invite
        event = Event.objects.select_related("template").filter(invite_code=invite_code).first()
    if event is None:
        raise EventNotFound(log_message="an unknown invite code")
    return event


def learner_seat(event: Event, *, owner: AbstractBaseUser | None, browser_key: str) -> Seat | None:
    """The seat this learner (their user, or their browser) took in the event, if any."""
    learner = Q(pk__in=[])
    if owner is not None and owner.is_authenticated:
        learner |= Q(session__owner=owner)
    if browser_key:
        learner |= Q(session__browser_key=browser_key)
    return event.seat_set.select_related("session__playground", "session__instance").filter(learner).last()


def holds_open_session(seat: Seat | None, now: datetime) -> bool:
    return seat is not None and seat.session.is_open and seat.session.expires_at > now


def event_join(
    *,
    invite_code: str,
    name: str = "",
    owner: AbstractBaseUser | None = None,
    browser_key: str = "",
    client_address: str | None = None,
    client_agent: str = "",
) -> Joined:
    """Take a seat in the event of this invite, and open its session (or give back the learner's own).

    Raises EventNotFound (unknown invite), EventNotOpen (outside the join
    window), EventFull (every seat taken by someone else), and whatever
    session_create raises (the host is full, the template's playground is not
    for this user).
    """
    owner = owner if owner is not None and owner.is_authenticated else None
    with transaction.atomic():
        # The event's row, locked until commit: joins of one event count the
        # seats taken and take one strictly one after another, so that no
        # two joiners can both see the last seat free.
        event = None
        if is_plain_name(invite_code):
            event = Event.objects.select_for_update().filter(invite_code=invite_code).first()
        if event is None:
            raise EventNotFound(log_message="an unknown invite code")
        now = timezone.now()
        seat = learner_seat(event, owner=owner, browser_key=browser_key)
        if refusal := join_refusal(event, seat=seat, now=now):
            raise refusal
        if holds_open_session(seat, now):
            return Joined(seat.session, None, rejoined=True)
        opened = session_create(
            template=event.template_id,
            duration=_session_duration(event, now),
            owner=owner,
            browser_key=browser_key,
            client_address=client_address,
            client_agent=client_agent,
            # A room of learners often shares one address: the event's seats
            # bound how many sessions it opens, not the per-client limit.
            per_client_limit=False,
        )
        if seat is None:
            Seat.objects.create(event=event, session=opened.session, name=name, taken_at=now)
        else:
            Seat.objects.filter(pk=seat.pk).update(session=opened.session, name=name or seat.name)
    logger.info("event %s: %s took a seat in session %s", event.pk, name or "a learner", opened.session.pk)
    return Joined(opened.session, opened.access_token, rejoined=False)


def join_refusal(event: Event, *, seat: Seat | None, now: datetime) -> PlaygroundError | None:
    """Why this learner (who holds `seat`, or none) cannot take a seat now, if they cannot."""
    opens, closes = join_window(event)
    if now < opens:
        return EventNotOpen(
            f"This workshop opens for joining at {opens.isoformat(timespec='minutes')}, "
            f"{int(JOIN_OPENS_BEFORE.total_seconds() // 60)} minutes before it starts.",
            log_message=f"event {event.pk}: joined before {opens.isoformat()}",
        )
    if now >= closes:
        return EventNotOpen(
            f"This workshop ended at {closes.isoformat(timespec='minutes')}.",
            log_message=f"event {event.pk}: joined after its end",
        )
    if seat is None and event.seat_set.count() >= event.seats:
        return EventFull(log_message=f"event {event.pk}: all {event.seats} seats taken")
    return None


def _session_duration(event: Event, now: datetime) -> timedelta:
    """Until the event ends, within the playground's maximum duration."""
    playground = Template.objects.select_related("playground").get(pk=event.template_id).playground
    return min(event.ends_at - now, playground.max_duration)


# --- The trainer's dashboard ------------------------------------------------------------


def event_for_trainer(*, event_id: str, user) -> Event:
    """The event, if this user runs it (or is staff); EventNotFound for anyone else, as for an unknown id."""
    event = None
    if is_plain_name(event_id) and getattr(user, "is_authenticated", False):
        event = Event.objects.select_related("template").filter(pk=event_id).first()
    if event is None or not (user.is_staff or event.owner_id == user.pk):
        raise EventNotFound(log_message=f"no event {event_id[:64]!r} for this user")
    return event


@dataclass(frozen=True)
class SeatRow:
    """A seat as the dashboard shows it."""

    name: str
    session_id: str
    session_status: str  # open, closed or expired (an open session past its expiry counts as expired)
    instance_status: str | None
    current_step: int | None  # the first step whose check has not passed; None when done
    steps: int
    taken_at: datetime
    expires_at: datetime
    last_activity_at: datetime | None
    last_check: CheckRun | None

    @property
    def done(self) -> bool:
        return self.current_step is None

    @property
    def progress(self) -> str:
        return "done" if self.done else f"{self.current_step} of {self.steps}"


def event_seats(*, event: Event) -> list[SeatRow]:
    """Every seat of the event, in the order they were taken, with its learner's progress.

    A learner is at the first step not done (labs.steps.step_done), or done
    when there is none.
    """
    seats = list(
        event.seat_set.select_related("session__instance").annotate(
            last_run=Subquery(CheckRun.objects.filter(session=OuterRef("session")).order_by("-ran_at").values("pk")[:1])
        )
    )
    session_ids = [seat.session_id for seat in seats]
    steps = list(Step.objects.filter(template_id=event.template_id).order_by("position"))
    passed = set(
        CheckRun.objects.filter(session_id__in=session_ids, passed=True).values_list("session_id", "step_id").distinct()
    )
    last_runs = CheckRun.objects.select_related("step").in_bulk([seat.last_run for seat in seats if seat.last_run])
    now = timezone.now()
    rows = []
    for seat in seats:
        session = seat.session
        current = next(
            (step.position for step in steps if not step_done(step, passed=(session.pk, step.pk) in passed)), None
        )
        instance = getattr(session, "instance", None)
        status = session.status
        if status == Session.Status.OPEN and session.expires_at <= now:
            status = Session.Status.EXPIRED
        rows.append(
            SeatRow(
                name=seat.name,
                session_id=session.pk,
                session_status=status,
                instance_status=instance.status if instance else None,
                current_step=current,
                steps=len(steps),
                taken_at=seat.taken_at,
                expires_at=session.expires_at,
                last_activity_at=session.last_activity_at,
                last_check=last_runs.get(seat.last_run),
            )
        )
    return rows


@dataclass(frozen=True)
class Outcome:
    """What an action on every seat did: the sessions it changed, and why it left the others."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[dict] = field(default_factory=list)  # {"session_id", "error", "message"}


def _open_sessions(event: Event) -> list[str]:
    return list(
        Session.objects.filter(seat__event=event, status=Session.Status.OPEN)
        .order_by("seat__taken_at")
        .values_list("pk", flat=True)
    )


def event_extend_all(*, event: Event, duration: timedelta | None = None) -> Outcome:
    """Extend every open session of the event's seats (see session_extend); one at its maximum stays as it is."""
    outcome = Outcome()
    for session_id in _open_sessions(event):
        try:
            session_extend(session_id=session_id, duration=duration)
        except (CannotExtend, SessionClosed) as exc:
            outcome.unchanged.append(_refusal(session_id, exc))
        else:
            outcome.changed.append(session_id)
    logger.info("event %s: extended %d sessions", event.pk, len(outcome.changed))
    return outcome


def event_close_all(*, event: Event) -> Outcome:
    """Close every open session of the event's seats (the seats stay taken)."""
    outcome = Outcome()
    for session_id in _open_sessions(event):
        session_close(session_id=session_id)
        outcome.changed.append(session_id)
    logger.info("event %s: closed %d sessions", event.pk, len(outcome.changed))
    return outcome


def _refusal(session_id: str, exc: PlaygroundError) -> dict:
    return {"session_id": session_id, "error": exc.reason, "message": exc.message}
