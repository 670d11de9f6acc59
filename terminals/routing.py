from django.urls import re_path

from terminals.consumers import TerminalConsumer

websocket_urlpatterns = [
    re_path(r"^sessions/(?P<session_id>[^/]+)/ws/?$", TerminalConsumer.as_asgi()),
]
