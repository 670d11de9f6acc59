"""The routes of guided labs: a session's steps, and workshops (events)."""

from django.urls import include, path

urlpatterns = [
    path("", include("labs.steps_urls")),
    path("", include("labs.events_urls")),
]
