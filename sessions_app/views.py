"""The REST API of the seed: sessions, their terminal, and the legacy instance routes."""

from django.conf import settings
from rest_framework import status, viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from playground.logcontext import set_session
from sessions_app import selectors, services
from sessions_app.errors import SessionHasNoInstance
from sessions_app.serializers import (
    InstanceCreateSerializer,
    InstanceSerializer,
    SessionCreateSerializer,
    SessionExtendSerializer,
    SessionSerializer,
    TerminalSerializer,
)

BROWSER_SESSIONS_KEY = "playground_sessions"


def _client_address(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _session_response(request: Request, session_id: str, code: int = status.HTTP_200_OK) -> Response:
    session = selectors.session_get(session_id=session_id)
    return Response(SessionSerializer(session, context={"request": request}).data, status=code)


class SessionCreationThrottle(SimpleRateThrottle):
    """PLAYGROUND_SESSION_RATE session creations per client (user, or IP address)."""

    scope = "session-create"

    def get_rate(self) -> str:
        return settings.PLAYGROUND_SESSION_RATE

    def get_cache_key(self, request: Request, view) -> str:
        ident = f"user-{request.user.pk}" if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class SessionTaggedViewSet(viewsets.ViewSet):
    """Tags the request's log lines with the session it names."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        session_id = kwargs.get("session_pk") or kwargs.get("pk")
        if session_id:
            set_session(session_id[:64])
        super().initial(request, *args, **kwargs)


class SessionViewSet(SessionTaggedViewSet):
    """`/sessions` and `/sessions/{id}`: a session and its one instance."""

    def get_throttles(self):
        return [SessionCreationThrottle()] if self.action == "create" else []

    def get_permissions(self):
        if self.action == "create" and settings.PLAYGROUND_REQUIRE_LOGIN:
            return [IsAuthenticated()]
        return [AllowAny()]

    def list(self, request: Request) -> Response:
        """The caller's own sessions, newest first: a user's, or those this browser opened; staff see all."""
        sessions = selectors.sessions_of(user=request.user, session_ids=request.session.get(BROWSER_SESSIONS_KEY, []))
        return Response(SessionSerializer(sessions, many=True, context={"request": request}).data)

    def create(self, request: Request) -> Response:
        body = SessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = services.session_create(
            **body.validated_data,
            owner=request.user,
            client_address=_client_address(request),
            client_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        # Remember it in the browser's own (cookie) session, so GET /sessions can list it.
        request.session[BROWSER_SESSIONS_KEY] = [session.id, *request.session.get(BROWSER_SESSIONS_KEY, [])][:50]
        return _session_response(request, session.id, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return _session_response(request, pk)

    def destroy(self, request: Request, pk: str) -> Response:
        services.session_close(session_id=pk)
        return _session_response(request, pk)

    def extend(self, request: Request, pk: str) -> Response:
        body = SessionExtendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.session_extend(session_id=pk, **body.validated_data)
        return _session_response(request, pk)

    def terminal(self, request: Request, pk: str) -> Response:
        session = selectors.session_get(session_id=pk)
        instance = selectors.session_instance(session=session)
        if instance is None:
            raise SessionHasNoInstance(log_message=f"session {pk} has no instance")
        return Response(TerminalSerializer(instance, context={"request": request}).data)


class InstanceViewSet(SessionTaggedViewSet):
    """`/sessions/{id}/instances[/{name}]`: kept for clients of the multi-instance API."""

    def list(self, request: Request, session_pk: str) -> Response:
        session = selectors.session_get(session_id=session_pk)
        instance = selectors.session_instance(session=session)
        return Response([InstanceSerializer(instance).data] if instance else [])

    def create(self, request: Request, session_pk: str) -> Response:
        body = InstanceCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = services.instance_create(session_id=session_pk, **body.validated_data)
        return Response(InstanceSerializer(instance).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, session_pk: str, pk: str) -> Response:
        instance = selectors.instance_get(session_id=session_pk, name=pk)
        return Response(InstanceSerializer(instance).data)

    def destroy(self, request: Request, session_pk: str, pk: str) -> Response:
        instance = services.instance_remove(session_id=session_pk, name=pk)
        return Response(InstanceSerializer(instance).data, status=status.HTTP_202_ACCEPTED)
