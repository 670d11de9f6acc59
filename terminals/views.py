"""The browser side of the terminal: the landing page and a session's page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from sessions_app import access
from sessions_app.access import Access
from sessions_app.errors import PlaygroundError
from sessions_app.messages import endings_for_page
from sessions_app.selectors import session_instance
from sessions_app.serializers import SessionSerializer
from terminals.consumers import FINAL_CLOSE_ENDINGS


# The pages call the API with fetch(); the cookie lets them send X-CSRFToken,
# which writes on the strength of a cookie need.
@require_safe
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "terminals/index.html")


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
