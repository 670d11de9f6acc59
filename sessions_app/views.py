"""The REST API of the seed: sessions, their terminal, and the legacy instance routes."""

from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from playground.logcontext import set_session
from sessions_app import selectors, services
from sessions_app.serializers import (
    InstanceCreateSerializer,
    InstanceSerializer,
    SessionCreateSerializer,
    SessionExtendSerializer,
    SessionSerializer,
    TerminalSerializer,
)


def _client_address(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _session_response(request: Request, session_id: str, code: int = status.HTTP_200_OK) -> Response:
    session = selectors.session_get(session_id=session_id)
    return Response(SessionSerializer(session, context={"request": request}).data, status=code)


class SessionTaggedViewSet(viewsets.ViewSet):
    """Tags the request's log lines with the session it names."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        session_id = kwargs.get("session_pk") or kwargs.get("pk")
        if session_id:
            set_session(session_id[:64])
        super().initial(request, *args, **kwargs)


class SessionViewSet(SessionTaggedViewSet):
    """`/sessions` and `/sessions/{id}`: a session and its one instance."""

    def create(self, request: Request) -> Response:
        body = SessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = services.session_create(
            **body.validated_data,
            owner=request.user,
            client_address=_client_address(request),
            client_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
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
            return Response(
                {"error": "no_instance", "message": "This session has no instance."},
                status=status.HTTP_404_NOT_FOUND,
            )
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
