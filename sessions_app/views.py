"""The REST API of the seed: sessions, their terminal, their share links, and
the legacy instance routes.

Every route of a session asks `access.session_for` first: its owner or staff
may do anything, a share link's holder may read (and, read-write, type), and
anyone else gets the same 404 as for an unknown id.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpResponseBase, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework import status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from playground.clients import request_client
from playground.logcontext import set_session
from playground.origins import origin_allowed
from sessions_app import access, selectors, services
from sessions_app.access import Access
from sessions_app.backends.base import Upload
from sessions_app.errors import CrossSiteRequest, InstanceNotRunning, InvalidRequest, SessionHasNoInstance
from sessions_app.models import Session, hash_secret
from sessions_app.serializers import (
    ExecSerializer,
    FileListSerializer,
    FilesWrittenSerializer,
    InstanceCreateSerializer,
    InstanceSerializer,
    PortPublicSerializer,
    SessionCreateSerializer,
    SessionExtendSerializer,
    SessionSerializer,
    ShareCreateSerializer,
    ShareRedeemSerializer,
    ShareSerializer,
    TerminalSerializer,
    port_urls,
    terminal_page_url,
)
from sessions_app.services import commands

# What a multipart body may hold beyond its files' bytes (boundaries, headers)
# before its Content-Length alone says it is too large.
MULTIPART_SLACK = 1 << 20


class SessionCreationThrottle(SimpleRateThrottle):
    """PLAYGROUND_SESSION_RATE session creations per client (user, or client address)."""

    scope = "session-create"

    def get_rate(self) -> str:
        return settings.PLAYGROUND_SESSION_RATE

    def get_cache_key(self, request: Request, view) -> str:
        ident = f"user-{request.user.pk}" if request.user.is_authenticated else request_client(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class PlaygroundAPIView(viewsets.ViewSet):
    """What every route of the API checks before its view runs.

    - Its log lines are tagged with the session it names.
    - A write comes from this site's own pages or from a client that is no
      browser: another site's page (its Origin, or the browser's
      Sec-Fetch-Site) is refused, whatever cookies it carries.
    Opening a session also needs a JSON body (415 otherwise): a form or a
    `no-cors` fetch from another site, which cannot send that type, opens
    none in a visitor's name. (Every other write needs an owner, and an
    owner's cookie needs the CSRF token.)
    """

    def initial(self, request: Request, *args, **kwargs) -> None:
        session_id = kwargs.get("session_pk") or kwargs.get("pk")
        if session_id:
            set_session(session_id[:64])
        super().initial(request, *args, **kwargs)
        if not hasattr(self, request.method.lower()):
            return  # a method this route does not offer: 405 follows
        if request.method not in SAFE_METHODS:
            _refuse_cross_site(request)

    def session_for(self, request: Request, session_id: str, need: Access) -> tuple[Session, access.Grant]:
        """The session, if the caller may do `need` with it (see access.session_for)."""
        session, grant = access.session_for(
            session_id=session_id, credentials=access.request_credentials(request), need=need
        )
        if grant.by_cookie and request.method not in SAFE_METHODS:
            # Our cookies ride along with any request the browser makes:
            # a write on their strength needs the page's CSRF token.
            SessionAuthentication().enforce_csrf(request)
        return session, grant


def _refuse_cross_site(request: Request) -> None:
    if request.META.get("HTTP_SEC_FETCH_SITE") == "cross-site":
        raise CrossSiteRequest(log_message="Sec-Fetch-Site: cross-site")
    origin = request.META.get("HTTP_ORIGIN")
    if origin is not None and not origin_allowed(origin, request.get_host()):
        raise CrossSiteRequest(log_message=f"a write from the page of {origin[:100]!r}")


def _session_response(
    request: Request, session: Session, grant: access.Grant, code=status.HTTP_200_OK, *, changed: bool = True
) -> Response:
    if changed:
        session = selectors.session_get(session_id=session.pk)  # as the change left it
    context = {"request": request, "access": grant.level}
    return Response(SessionSerializer(session, context=context).data, status=code)


class SessionViewSet(PlaygroundAPIView):
    """`/sessions` and `/sessions/{id}`: a session and its one instance."""

    def get_throttles(self):
        return [SessionCreationThrottle()] if self.action == "create" else []

    def get_permissions(self):
        if self.action == "create" and settings.PLAYGROUND_REQUIRE_LOGIN:
            return [IsAuthenticated()]
        return [AllowAny()]

    def list(self, request: Request) -> Response:
        """The caller's own sessions, newest first: a user's or this browser's; staff see all."""
        sessions = selectors.sessions_of(credentials=access.request_credentials(request))
        context = {"request": request, "access": Access.OWNER}
        return Response(SessionSerializer(sessions, many=True, context=context).data)

    def create(self, request: Request) -> Response:
        if request.content_type.split(";")[0].strip() != "application/json":
            raise UnsupportedMediaType(request.content_type or "(none)")
        body = SessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        browser_id = access.browser_id(request) or access.new_browser_id()
        opened = services.session_create(
            **body.validated_data,
            owner=request.user,
            browser_key=hash_secret(browser_id),
            client_address=request_client(request),
            client_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        response = _session_response(request, opened.session, access.Grant(Access.OWNER), status.HTTP_201_CREATED)
        # The owner's credential for API clients, shown this once.
        response.data["access_token"] = opened.access_token
        access.set_browser_cookie(response, browser_id)
        return response

    def retrieve(self, request: Request, pk: str) -> Response:
        # Clients poll this while the instance starts: one query.
        return _session_response(request, *self.session_for(request, pk, Access.READ_ONLY), changed=False)

    def destroy(self, request: Request, pk: str) -> Response:
        session, grant = self.session_for(request, pk, Access.OWNER)
        services.session_close(session_id=session.pk)
        return _session_response(request, session, grant)

    def extend(self, request: Request, pk: str) -> Response:
        session, grant = self.session_for(request, pk, Access.OWNER)
        body = SessionExtendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.session_extend(session_id=session.pk, **body.validated_data)
        return _session_response(request, session, grant)

    def exec(self, request: Request, pk: str) -> HttpResponseBase:
        session, _ = self.session_for(request, pk, Access.READ_WRITE)  # as typing in its terminal
        wait = _flag(request, "wait")
        body = ExecSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        records = services.instance_exec(session=session, **body.validated_data)
        if wait:
            return Response(_collected(records))
        return StreamingHttpResponse(_ndjson(records), content_type="application/x-ndjson")

    def stats(self, request: Request, pk: str) -> Response:
        session, _ = self.session_for(request, pk, Access.READ_ONLY)
        return Response(services.instance_stats(session=session))

    def ports(self, request: Request, pk: str) -> Response:
        session, _ = self.session_for(request, pk, Access.READ_ONLY)
        ports = services.session_ports(session=session)
        return Response([{**port, **port_urls(request, session.pk, port["port"])} for port in ports])

    def publish_port(self, request: Request, pk: str) -> Response:
        session, _ = self.session_for(request, pk, Access.READ_WRITE)
        body = PortPublicSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        port = services.port_set_public(session=session, **body.validated_data)
        return Response({**port, **port_urls(request, session.pk, port["port"])})

    def terminal(self, request: Request, pk: str) -> Response:
        session, _ = self.session_for(request, pk, Access.READ_ONLY)
        instance = selectors.session_instance(session=session)
        if instance is None:
            raise SessionHasNoInstance(log_message=f"session {pk} has no instance")
        return Response(TerminalSerializer(instance, context={"request": request}).data)


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "0")
    if value not in ("0", "1"):
        raise InvalidRequest(f"{name}: 1 or 0.")
    return value == "1"


def _collected(records: Iterator[dict]) -> dict:
    """A command's records (services.instance_exec) as one answer."""
    output = {"stdout": [], "stderr": []}
    end: dict = {}
    for record in records:
        if "stream" in record:
            output[record["stream"]].append(record["data"])
        else:
            end = record
    if end.get("error"):
        raise InstanceNotRunning(end["message"], log_message="exec broke off")
    return {
        "stdout": "".join(output["stdout"]),
        "stderr": "".join(output["stderr"]),
        "exit_code": end.get("exit_code"),
        "timed_out": end.get("timed_out", False),
        "truncated": end.get("truncated", False),
    }


def _ndjson(records: Iterator[dict]) -> AsyncIterator[bytes]:
    """A command's records as they come, one JSON object a line."""
    return _streamed(records, lambda record: json.dumps(record).encode() + b"\n")


async def _streamed(items: Iterator, encode: Callable[..., bytes] = bytes) -> AsyncIterator[bytes]:
    """Items read from the instance as they come, without holding the event
    loop: they are read on a thread of commands.readers."""
    reading = None
    try:
        while True:
            reading = commands.readers.submit(next, items, None)
            if (item := await asyncio.wrap_future(reading)) is None:
                break
            yield encode(item)
    finally:
        # A client gone: stop reading once the read under way returns (the
        # command's timeout bounds it), on a reader thread, never beside it.
        # (The thread's own future: the loop's wrapper of it is cancelled
        # with the response, while the thread reads on.)
        if reading is not None and not reading.done():
            reading.add_done_callback(lambda _: commands.readers.submit(items.close))
        else:
            commands.readers.submit(items.close)


class FileViewSet(PlaygroundAPIView):
    """`/sessions/{id}/files` and `/sessions/{id}/files/list`: files in and out of the instance.

    All three need the owner or a read-write share, as typing in the terminal
    does: whoever may type there may `cat` any of these files already, while
    a read-only share only watches what the learner chooses to show.
    """

    parser_classes = [MultiPartParser]  # a raw body is read by upload() itself, never parsed

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        # Only `path`: a misspelt parameter is an error, not a silent default
        # (a file written somewhere else than meant).
        unknown = sorted(set(request.query_params) - {"path"})
        if unknown:
            raise InvalidRequest(f"Unknown query parameter: {unknown[0]!r}; these routes take `path` only.")

    def upload(self, request: Request, session_pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.READ_WRITE)
        path = request.query_params.get("path")
        if request.content_type.split(";")[0].strip().lower() == "multipart/form-data":
            written = services.files_upload(
                session=session, path=path or ".", uploads=_multipart_uploads(request), into_directory=True
            )
            return Response(FilesWrittenSerializer({"files": written}).data, status=status.HTTP_201_CREATED)
        if not path:
            raise InvalidRequest("path: the file's path is needed when the body is the file itself.")
        services.upload_check_size(_content_length(request))
        # Django's own request: its stream is the body, read as it comes
        # (DRF's stream would be empty without a Content-Length).
        upload = services.upload_spool(stream=request._request, name=path.rsplit("/", 1)[-1])
        try:
            written = services.files_upload(session=session, path=path, uploads=[upload], into_directory=False)
        finally:
            upload.file.close()
        return Response(FilesWrittenSerializer({"files": written}).data, status=status.HTTP_201_CREATED)

    def download(self, request: Request, session_pk: str) -> HttpResponseBase:
        session, _ = self.session_for(request, session_pk, Access.READ_WRITE)
        download = services.files_download(session=session, path=_path(request))
        response = StreamingHttpResponse(_streamed(download.chunks), content_type=download.content_type)
        response["Content-Disposition"] = content_disposition_header(True, download.filename)
        return response

    def contents(self, request: Request, session_pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.READ_WRITE)
        listing = services.files_list(session=session, path=request.query_params.get("path") or ".")
        return Response(FileListSerializer(listing).data)


def _path(request: Request) -> str:
    path = request.query_params.get("path")
    if not path:
        raise InvalidRequest("path: the path of a file or directory in the instance is needed.")
    return path


def _content_length(request: Request) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _multipart_uploads(request: Request) -> list[Upload]:
    """Every file part of a multipart body, whatever its field's name (Django spools them to disk)."""
    services.upload_check_size(_content_length(request) - MULTIPART_SLACK)
    try:
        files = request.FILES
    except (SuspiciousOperation, RequestDataTooBig) as exc:  # too many parts or fields
        raise ParseError(f"Multipart form parse error - {exc}") from None
    uploads = [Upload(name=f.name, size=f.size, file=f) for field in files for f in files.getlist(field)]
    if not uploads:
        raise InvalidRequest("files: a multipart upload needs at least one file.")
    return uploads


class ShareViewSet(PlaygroundAPIView):
    """`/sessions/{id}/shares[/{share id}]`: the owner's share links; `/shares/redeem` for their holders."""

    def list(self, request: Request, session_pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.OWNER)
        shares = session.shares.all()
        return Response(ShareSerializer(shares, many=True, context={"request": request}).data)

    def create(self, request: Request, session_pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.OWNER)
        body = ShareCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = services.share_create(session_id=session.pk, **body.validated_data)
        data = ShareSerializer(created.share, context={"request": request, "token": created.token}).data
        return Response(data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, session_pk: str, pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.OWNER)
        services.share_revoke(session_id=session.pk, share_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def redeem(self, request: Request) -> Response:
        """Keep a share link's token in this browser's shares cookie (the page does this for `#share=`)."""
        body = ShareRedeemSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        share = services.share_redeem(token=body.validated_data["token"])
        response = Response(
            {
                "session_id": share.session_id,
                "mode": share.mode,
                "expires_at": share.expires_at,
                "terminal_url": terminal_page_url(request, share.session_id),
            }
        )
        access.add_share_to_cookie(response, access.request_credentials(request), share.token_hash)
        return response


class InstanceViewSet(PlaygroundAPIView):
    """`/sessions/{id}/instances[/{name}]`: kept for clients of the multi-instance API."""

    def list(self, request: Request, session_pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.READ_ONLY)
        instance = selectors.session_instance(session=session)
        return Response([InstanceSerializer(instance).data] if instance else [])

    def create(self, request: Request, session_pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.OWNER)
        body = InstanceCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = services.instance_create(session_id=session.pk, **body.validated_data)
        return Response(InstanceSerializer(instance).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, session_pk: str, pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.READ_ONLY)
        instance = selectors.instance_get(session_id=session.pk, name=pk)
        return Response(InstanceSerializer(instance).data)

    def destroy(self, request: Request, session_pk: str, pk: str) -> Response:
        session, _ = self.session_for(request, session_pk, Access.OWNER)
        instance = services.instance_remove(session_id=session.pk, name=pk)
        return Response(InstanceSerializer(instance).data, status=status.HTTP_202_ACCEPTED)
