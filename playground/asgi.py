import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")

# Django must be set up before anything imports models.
django.setup(set_prefix=False)

from playground.handler import PlaygroundASGIHandler  # noqa: E402

django_asgi_app = PlaygroundASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from playground.accesslog import AccessLog  # noqa: E402
from terminals.origin import OriginCheck  # noqa: E402
from terminals.proxy import PortProxy  # noqa: E402
from terminals.routing import websocket_urlpatterns  # noqa: E402

# A learner's published ports (terminals.proxy) are served before Django sees the request.
ports = PortProxy(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
application = AccessLog(ports)
