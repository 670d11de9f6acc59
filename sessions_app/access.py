"""Who may use a session, and how.

A session has owners: its logged-in user, the browser that opened it (the
signed browser cookie), and whoever holds its access token (`Authorization:
Bearer <token>`, returned once when the session is opened). Staff may do
anything an owner may. Others may watch or use its terminal through a share
link (a share token, redeemed into the shares cookie by the page, or sent as
a bearer token by an API client). The trainer of a workshop (labs.Event)
watches the terminal of each session that holds one of its seats: read-only,
nothing more. Anyone else is told the session does not exist: the same 404
as an unknown id.

Credentials are read from a Django request or from the scope of the
terminal's WebSocket, in the same way.
"""

import enum
import json
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from importlib import import_module

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.http import HttpRequest
from django.utils import timezone

from labs.models import Seat
from sessions_app.errors import NotOwner, SessionNotFound
from sessions_app.models import Session, Share, hash_secret, new_secret
from sessions_app.selectors import session_get

BROWSER_COOKIE = "playground_browser"
SHARES_COOKIE = "playground_shares"
COOKIE_SALT = "playground.access"
COOKIE_MAX_AGE = 30 * 24 * 3600
MAX_SHARES_KEPT = 20  # share links one browser keeps redeemed


class Access(enum.IntEnum):
    """What a caller may do with a session, each level including the ones below."""

    NONE = 0
    READ_ONLY = 1  # see the session and watch its terminal
    READ_WRITE = 2  # also type in its terminal
    OWNER = 3  # also close, extend, share, replace the instance

    @property
    def label(self) -> str:
        return {3: "owner", 2: "read-write", 1: "read-only", 0: "none"}[self.value]


SHARE_ACCESS = {Share.Mode.READ_ONLY: Access.READ_ONLY, Share.Mode.READ_WRITE: Access.READ_WRITE}


@dataclass(frozen=True)
class Credentials:
    """What a caller presents: each part hashed as the database keeps it."""

    user: object = field(default_factory=AnonymousUser)
    bearer: str | None = None  # hash of an `Authorization: Bearer` token
    browser: str | None = None  # hash of the browser cookie's id
    shares: tuple[str, ...] = ()  # hashes of the share tokens this browser redeemed


@dataclass(frozen=True)
class Grant:
    level: Access
    share_id: str | None = None  # the share link the access comes from, if that is all there is
    # The access comes from one of our cookies, which a browser sends along
    # whatever page asks: a write on its strength must carry the CSRF token.
    # (Django's session cookie of a logged-in user is DRF's to check.)
    by_cookie: bool = False


# --- Reading credentials -------------------------------------------------------------


def _unsign(value: str | None, name: str) -> str | None:
    if not value:
        return None
    try:
        return signing.get_cookie_signer(salt=name + COOKIE_SALT).unsign(value, max_age=COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None


def _parse_shares(raw: str | None) -> tuple[str, ...]:
    try:
        hashes = json.loads(raw or "[]")
    except ValueError:
        return ()
    return tuple(h for h in hashes if isinstance(h, str))[:MAX_SHARES_KEPT] if isinstance(hashes, list) else ()


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    return hash_secret(token.strip()) if scheme.lower() == "bearer" and token.strip() else None


def _credentials(user, authorization: str | None, cookies: dict[str, str]) -> Credentials:
    browser = _unsign(cookies.get(BROWSER_COOKIE), BROWSER_COOKIE)
    return Credentials(
        user=user if user is not None else AnonymousUser(),
        bearer=_bearer(authorization),
        browser=hash_secret(browser) if browser else None,
        shares=_parse_shares(_unsign(cookies.get(SHARES_COOKIE), SHARES_COOKIE)),
    )


def request_credentials(request) -> Credentials:
    return _credentials(getattr(request, "user", None), request.META.get("HTTP_AUTHORIZATION"), request.COOKIES)


def scope_credentials(scope: dict, *, with_user: bool = False) -> Credentials:
    """Credentials of an ASGI request; `with_user`: look up the logged-in user
    (from Django's session cookie) where no middleware put one in the scope.
    Database access: call from sync code."""
    headers = dict(scope.get("headers") or [])
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # a malformed cookie header counts as none
        cookies = SimpleCookie()
    values = {name: morsel.value for name, morsel in cookies.items()}
    user = scope.get("user")
    if user is None and with_user:
        user = _session_user(values.get(settings.SESSION_COOKIE_NAME))
    return _credentials(user, headers.get(b"authorization", b"").decode("latin-1") or None, values)


def _session_user(session_key: str | None):
    if not session_key:
        return AnonymousUser()
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return auth.get_user(request)


# --- Deciding ------------------------------------------------------------------------


def session_grant(session: Session, credentials: Credentials) -> Grant:
    """What these credentials may do with this session."""
    user = credentials.user
    if getattr(user, "is_authenticated", False) and (user.is_staff or session.owner_id == user.pk):
        return Grant(Access.OWNER)
    if credentials.bearer and session.access_token_hash and credentials.bearer == session.access_token_hash:
        return Grant(Access.OWNER)
    if credentials.browser and session.browser_key and credentials.browser == session.browser_key:
        return Grant(Access.OWNER, by_cookie=True)
    grant = _share_grant(session, credentials)
    if grant.level == Access.NONE and _trains(user, session):
        # Read-only, never more: the trainer watches, and acts on the
        # session only through the event's own actions (labs.events).
        return Grant(Access.READ_ONLY)
    return grant


def _trains(user, session: Session) -> bool:
    """Whether the user runs the workshop in which this session holds a seat."""
    return (
        getattr(user, "is_authenticated", False)
        and Seat.objects.filter(session_id=session.pk, event__owner_id=user.pk).exists()
    )


def _share_grant(session: Session, credentials: Credentials) -> Grant:
    hashes = [h for h in (credentials.bearer, *credentials.shares) if h]
    if not hashes:
        return Grant(Access.NONE)
    shares = Share.objects.filter(
        session=session, token_hash__in=hashes, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).values_list("pk", "mode", "token_hash")
    best = max(
        ((SHARE_ACCESS[mode], pk, token_hash != credentials.bearer) for pk, mode, token_hash in shares),
        default=None,
    )
    if best is None:
        return Grant(Access.NONE)
    level, share_id, by_cookie = best
    return Grant(level, share_id=share_id, by_cookie=by_cookie)


def session_for(*, session_id: str, credentials: Credentials, need: Access) -> tuple[Session, Grant]:
    """The session and what the caller may do with it, if at least `need`.

    Raises SessionNotFound when the caller has no access at all (as for an
    unknown id: nothing tells them it exists) and NotOwner when a share
    link holder asks for more than the link gives.
    """
    session = session_get(session_id=session_id)
    grant = session_grant(session, credentials)
    if grant.level == Access.NONE:
        raise SessionNotFound(log_message=f"no access to session {session_id}")
    if grant.level < need:
        raise NotOwner(log_message=f"{grant.level.label} access to session {session_id}, {need.label} needed")
    return session, grant


# --- Cookies ---------------------------------------------------------------------------
# Signed (nobody can make one up), HttpOnly (no script reads them) and
# SameSite=Lax (another site's page cannot make the browser send them with a
# write).


def new_browser_id() -> str:
    return new_secret()


def browser_id(request) -> str | None:
    """The id in this browser's cookie, if it has a valid one."""
    return _unsign(request.COOKIES.get(BROWSER_COOKIE), BROWSER_COOKIE)


def _set_cookie(response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        signing.get_cookie_signer(salt=name + COOKIE_SALT).sign(value),
        max_age=COOKIE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def set_browser_cookie(response, browser_id: str) -> None:
    _set_cookie(response, BROWSER_COOKIE, browser_id)


def add_share_to_cookie(response, credentials: Credentials, token_hash: str) -> None:
    """Keep one more redeemed share link in the browser (the oldest fall off)."""
    kept = [token_hash, *(h for h in credentials.shares if h != token_hash)][:MAX_SHARES_KEPT]
    _set_cookie(response, SHARES_COOKIE, json.dumps(kept))
