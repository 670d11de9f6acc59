"""A session's steps: read them, check one, solve one (each route with or without a trailing slash)."""

from django.urls import re_path

from labs.steps_views import StepViewSet

NESTED_SESSION = r"(?P<session_pk>[^/]+)"
POSITION = r"(?P<position>[^/]+)"

session_steps = StepViewSet.as_view({"get": "list"})
step_check = StepViewSet.as_view({"post": "check_step"})
step_solve = StepViewSet.as_view({"post": "solve_step"})

urlpatterns = [
    re_path(rf"^sessions/{NESTED_SESSION}/steps/?$", session_steps, name="session-steps"),
    re_path(rf"^sessions/{NESTED_SESSION}/steps/{POSITION}/check/?$", step_check, name="session-step-check"),
    re_path(rf"^sessions/{NESTED_SESSION}/steps/{POSITION}/solve/?$", step_solve, name="session-step-solve"),
]
