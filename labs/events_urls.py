"""Workshops: join one by its invite, and the trainer's dashboard."""

from django.urls import re_path

from labs import events_views
from labs.events_views import EventJoinViewSet, EventViewSet

# Any segment: a malformed id is answered as an unknown one (labs.events.event_for_trainer).
EVENT = r"(?P<event_id>[^/]+)"

join = EventJoinViewSet.as_view({"post": "join"})
seats = EventViewSet.as_view({"get": "seats"})
extend = EventViewSet.as_view({"post": "extend"})
close = EventViewSet.as_view({"post": "close"})

urlpatterns = [
    # The API's routes, like the sessions', with or without a trailing slash.
    re_path(r"^events/join/?$", join, name="events-join"),
    re_path(rf"^events/{EVENT}/seats/?$", seats, name="event-seats"),
    re_path(rf"^events/{EVENT}/extend/?$", extend, name="event-extend"),
    re_path(rf"^events/{EVENT}/close/?$", close, name="event-close"),
    # The pages.
    re_path(rf"^events/{EVENT}/seats\.csv$", events_views.seats_csv, name="event-seats-csv"),
    re_path(rf"^events/{EVENT}/dashboard/?$", events_views.dashboard, name="event-dashboard"),
    re_path(r"^e/(?P<invite_code>[^/]+)/?$", events_views.join_page, name="event-join-page"),
]
