"""How many sessions of each template the pool keeps prepared (sessions_app.services.prepared)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F
from django.utils import timezone

from labs.models import Event, Template


def prepared_targets() -> dict[Template, int]:
    """Each template with sessions to prepare ahead, and how many.

    A template keeps its own `prepared` count, and more while a workshop of it
    is about to start or under way: as many as the event has seats free, from
    PLAYGROUND_EVENT_PREPARE_AHEAD seconds before it starts until it ends, so
    that a room joining at once does not wait for instances to start and be
    set up. A template's target stays within PLAYGROUND_MAX_SESSIONS, what the
    host runs at most.
    """
    targets = {
        template: template.prepared for template in Template.objects.filter(prepared__gt=0).select_related("playground")
    }
    for template, free in _free_seats_soon().items():
        targets[template] = min(targets.get(template, 0) + free, settings.PLAYGROUND_MAX_SESSIONS)
    return targets


def _free_seats_soon() -> dict[Template, int]:
    """Free seats of the events starting within PLAYGROUND_EVENT_PREPARE_AHEAD and not ended, per template."""
    now = timezone.now()
    events = (
        Event.objects.filter(starts_at__lte=now + timedelta(seconds=settings.PLAYGROUND_EVENT_PREPARE_AHEAD))
        .filter(ends_at__gt=now)
        .annotate(taken=Count("seat_set"))
        .filter(seats__gt=F("taken"))
        .select_related("template__playground")
    )
    free: dict[Template, int] = {}
    for event in events:
        free[event.template] = free.get(event.template, 0) + event.seats - event.taken
    return free
