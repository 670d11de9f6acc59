"""The browser side of the terminal: the landing page and a session's page."""

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from labs.models import Template
from sessions_app import access
from sessions_app.access import Access
from sessions_app.errors import PlaygroundError
from sessions_app.messages import endings_for_page
from sessions_app.selectors import session_instance
from sessions_app.serializers import SessionSerializer
from sessions_app.services import port_ticket
from terminals.consumers import FINAL_CLOSE_ENDINGS
from terminals.proxy import TICKET_PARAMETER


# The pages call the API with fetch(); the cookie lets them send X-CSRFToken,
# which writes on the strength of a cookie need.
@require_safe
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "terminals/index.html")


@require_safe
@ensure_csrf_cookie
def template_start(request: HttpRequest, slug: str) -> HttpResponse:
    """A template's landing page (`/t/<slug>`): its Start opens a session of it."""
    found = Template.objects.select_related("playground").filter(pk=slug).first()
    if found is None or not found.playground.permits_user(request.user):
        return render(request, "terminals/not_found.html", {"what": "template"}, status=404)
    return render(request, "terminals/index.html", {"template": found})


@require_safe
@ensure_csrf_cookie
def session(request: HttpRequest, session_id: str) -> HttpResponse:
    """The terminal of a session the visitor may see, closed ones included: the page says it is closed.

    Anyone else gets the page for no such session, which redeems a share
    link's token (`#share=...`, which the browser never sends) and comes back.
    """
    try:
        found, grant = access.session_for(
            session_id=session_id, credentials=access.request_credentials(request), need=Access.READ_ONLY
        )
    except PlaygroundError:
        return render(request, "terminals/not_found.html", status=404)
    context = {
        "session": found,
        "instance": session_instance(session=found),
        "owner": grant.level == Access.OWNER,
        # What GET /sessions/{id} would answer, so the page starts without a round trip.
        "session_data": SessionSerializer(found, context={"request": request, "access": grant.level}).data,
        # What the page says when the session or its terminal ends: the same words as the server's.
        "endings": {"endings": endings_for_page(), "final_closes": FINAL_CLOSE_ENDINGS},
    }
    return render(request, "terminals/session.html", context)


@require_safe
def open_port(request: HttpRequest, session_id: str, port: str) -> HttpResponse:
    """Where a port's badge leads: the port at a host name of its own where the
    operator set PLAYGROUND_PORTS_DOMAIN (with a ticket that lets this browser
    in there), else under the session's path."""
    credentials = access.request_credentials(request)
    try:
        found, _ = access.session_for(session_id=session_id, credentials=credentials, need=Access.READ_ONLY)
    except PlaygroundError:
        return render(request, "terminals/not_found.html", status=404)
    if not settings.PLAYGROUND_PORTS_DOMAIN:
        return HttpResponseRedirect(f"/sessions/{found.pk}/ports/{int(port)}/")
    ticket = port_ticket(session=found, port=int(port), credentials=credentials)
    server_port = request.get_port()
    default = "443" if request.is_secure() else "80"
    host = f"{int(port)}-{found.pk}.{settings.PLAYGROUND_PORTS_DOMAIN}" + (
        f":{server_port}" if server_port != default else ""
    )
    scheme = "https" if request.is_secure() else "http"
    return HttpResponseRedirect(f"{scheme}://{host}/?{urlencode({TICKET_PARAMETER: ticket})}")
