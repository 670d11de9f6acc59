"""The seed's routes, each with or without a trailing slash."""

from django.urls import re_path

from sessions_app.views import FileViewSet, InstanceViewSet, SessionViewSet, ShareViewSet

SESSION = r"(?P<pk>[^/]+)"
NESTED_SESSION = r"(?P<session_pk>[^/]+)"

sessions = SessionViewSet.as_view({"get": "list", "post": "create"})
session = SessionViewSet.as_view({"get": "retrieve", "delete": "destroy"})
terminal = SessionViewSet.as_view({"get": "terminal"})
extend = SessionViewSet.as_view({"post": "extend"})
exec_command = SessionViewSet.as_view({"post": "exec"})
stats = SessionViewSet.as_view({"get": "stats"})
ports = SessionViewSet.as_view({"get": "ports", "post": "publish_port"})
files = FileViewSet.as_view({"get": "download", "post": "upload"})
file_list = FileViewSet.as_view({"get": "contents"})
shares = ShareViewSet.as_view({"get": "list", "post": "create"})
share = ShareViewSet.as_view({"delete": "destroy"})
redeem = ShareViewSet.as_view({"post": "redeem"})
instances = InstanceViewSet.as_view({"get": "list", "post": "create"})
instance = InstanceViewSet.as_view({"get": "retrieve", "delete": "destroy"})

urlpatterns = [
    re_path(r"^sessions/?$", sessions, name="sessions"),
    re_path(rf"^sessions/{SESSION}/?$", session, name="session"),
    re_path(rf"^sessions/{SESSION}/terminal/?$", terminal, name="session-terminal"),
    re_path(rf"^sessions/{SESSION}/extend/?$", extend, name="session-extend"),
    re_path(rf"^sessions/{SESSION}/exec/?$", exec_command, name="session-exec"),
    re_path(rf"^sessions/{SESSION}/stats/?$", stats, name="session-stats"),
    # (A port itself, /sessions/{id}/ports/{port}/..., is terminals.proxy's, in front of Django.)
    re_path(rf"^sessions/{SESSION}/ports/?$", ports, name="session-ports"),
    re_path(rf"^sessions/{NESTED_SESSION}/files/?$", files, name="session-files"),
    re_path(rf"^sessions/{NESTED_SESSION}/files/list/?$", file_list, name="session-file-list"),
    re_path(rf"^sessions/{NESTED_SESSION}/shares/?$", shares, name="session-shares"),
    re_path(rf"^sessions/{NESTED_SESSION}/shares/(?P<pk>[^/]+)/?$", share, name="session-share"),
    re_path(r"^shares/redeem/?$", redeem, name="shares-redeem"),
    re_path(rf"^sessions/{NESTED_SESSION}/instances/?$", instances, name="session-instances"),
    re_path(rf"^sessions/{NESTED_SESSION}/instances/(?P<pk>[^/]+)/?$", instance, name="session-instance"),
]
