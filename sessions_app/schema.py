"""The OpenAPI description of the REST API (served at /api/schema/ and /api/docs/).

Every annotation lives here so that views.py stays plain: the app imports
this module when it starts (sessions_app.apps), which applies the descriptions below
to the view classes. Error examples are built from the domain errors' own
reasons and messages, so they cannot drift from what the API answers.
"""

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from sessions_app import errors
from sessions_app.serializers import (
    ExecResultSerializer,
    ExecSerializer,
    FileListSerializer,
    FilesUploadSerializer,
    FilesWrittenSerializer,
    InstanceCreateSerializer,
    InstanceSerializer,
    InstanceStatsSerializer,
    PortPublicSerializer,
    PortSerializer,
    SessionCreateSerializer,
    SessionExtendSerializer,
    SessionSerializer,
    ShareCreateSerializer,
    ShareRedeemedSerializer,
    ShareRedeemSerializer,
    ShareSerializer,
    StrictSerializer,
    TerminalSerializer,
)
from sessions_app.views import FileViewSet, InstanceViewSet, SessionViewSet, ShareViewSet


class ErrorSerializer(serializers.Serializer):
    """The body of every error (the `Error` component)."""

    error = serializers.CharField(help_text="A short reason for programs, such as `session_not_found`.")
    message = serializers.CharField(help_text="What went wrong, phrased for a person.")
    details = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Only when the body failed validation: each field's problems.",
    )


# --- Routes -----------------------------------------------------------------

# The documented name of the path parameter that follows each segment; the
# views call them `pk`, `session_pk` and `event_id`.
_PARAMETER_NAMES = {"sessions": "id", "instances": "name", "shares": "share_id", "events": "id"}


def only_canonical_routes(endpoints):
    """Preprocessing hook: document each route as the README spells it.

    Each route is one regex matching both spellings (`^sessions/?$`), which
    drf-spectacular reads as `/sessions/`; the seed's form has no trailing
    slash. The parameters are renamed in the path and in the regex alike,
    since drf-spectacular types a path parameter from its named group; the
    views' own keyword arguments are untouched.
    """
    canonical = []
    for path, path_regex, method, callback in endpoints:
        path = path.rstrip("/") or "/"
        for segment, name in _PARAMETER_NAMES.items():
            path = re.sub(rf"/{segment}/\{{\w+\}}", f"/{segment}/{{{name}}}", path)
            path_regex = re.sub(rf"{segment}/\(\?P<\w+>", f"{segment}/(?P<{name}>", path_regex)
        canonical.append((path, path_regex, method, callback))
    return canonical


# Serializers that only ever answer: every one of their fields is in every
# response (null where the schema says so), which generated clients should know.
_RESPONSE_ONLY_COMPONENTS = ("Session", "Instance", "Terminal", "Share", "ShareRedeemed")


def responses_have_every_field(result, generator, request, public):
    """Postprocessing hook: mark every field of the response-only components as required."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in _RESPONSE_ONLY_COMPONENTS:
        if name in schemas:
            schemas[name]["required"] = list(schemas[name]["properties"])
    return result


# Request bodies, by component: their serializers refuse unknown fields
# (StrictSerializer) and blank strings, which drf-spectacular does not say.
def _strict(serializer_class: type) -> list[type]:
    """Every request body's serializer: the ones that refuse unknown fields."""
    found = []
    for subclass in serializer_class.__subclasses__():
        found += [subclass, *_strict(subclass)]
    return found


def requests_refuse_what_the_api_refuses(result, generator, request, public):
    """Postprocessing hook: no unknown fields and no blank strings in request
    bodies, and opening a session needs a (JSON) body, even `{}`."""
    result["paths"]["/sessions"]["post"]["requestBody"]["required"] = True
    schemas = result.get("components", {}).get("schemas", {})
    # The request bodies' components (drf-spectacular names them after their
    # serializer, less "Serializer"), of every app's serializers: looked up
    # now, once every app has loaded its own.
    components = {cls.__name__.removesuffix("Serializer"): cls for cls in _strict(StrictSerializer)}
    for name, serializer_class in components.items():
        if name not in schemas:
            continue
        schemas[name]["additionalProperties"] = False
        for field_name, field in serializer_class().fields.items():
            prop = schemas[name]["properties"].get(field_name)
            if isinstance(field, serializers.CharField) and not field.allow_blank and prop is not None:
                prop.setdefault("minLength", 1)
    return result


SESSION_ID = OpenApiParameter(
    "id", str, OpenApiParameter.PATH, description="The session's id, as answered by `POST /sessions`."
)
SHARE_ID = OpenApiParameter("share_id", str, OpenApiParameter.PATH, description="The share link's `id`.")
INSTANCE_NAME = OpenApiParameter(
    "name", str, OpenApiParameter.PATH, description="The instance's name (`node1`, the only one a session has)."
)


# --- Error bodies -----------------------------------------------------------


def _example(summary: str, reason: str, message: str, **extra) -> OpenApiExample:
    return OpenApiExample(reason, summary=summary, value=errors.error_body(reason, message, **extra))


def _domain_example(error: type[errors.PlaygroundError], summary: str, message: str = "") -> OpenApiExample:
    return _example(summary, error.reason, message or error.message)


def _errors(description: str, *examples: OpenApiExample) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description, examples=list(examples))


SESSION_NOT_FOUND = _domain_example(errors.SessionNotFound, "No such session")
SESSION_CLOSED = _domain_example(errors.SessionClosed, "The session is closed or has expired")
MALFORMED = _example(
    "The body is not valid JSON", "malformed_request", "JSON parse error - Expecting value: line 1 column 1 (char 0)"
)
INVALID = _example(
    "A field failed validation",
    "invalid_request",
    "duration: Ensure this value is greater than or equal to 60.",
    details={"duration": ["Ensure this value is greater than or equal to 60."]},
)
UNKNOWN_FIELD = _example(
    "A field the endpoint does not know",
    "invalid_request",
    "imagee: Unknown field.",
    details={"imagee": ["Unknown field."]},
)
IMAGE_NOT_ALLOWED = _domain_example(
    errors.ImageNotAllowed,
    "The playground does not offer that image",
    "The playground 'default' does not offer the image 'alpine:latest'.",
)

NOT_FOUND = _errors("No such session (`session_not_found`).", SESSION_NOT_FOUND)
INSTANCE_NOT_FOUND = _errors(
    "No such session (`session_not_found`), or it has no instance of that name (`instance_not_found`).",
    SESSION_NOT_FOUND,
    _domain_example(errors.InstanceNotFound, "No instance of that name"),
)
NOT_OWNER = _errors(
    "The caller holds only a share link (`not_owner`), or the request came from another site's page "
    "(`cross_site_request`), or a cookie-authenticated write lacks the CSRF token (`permission_denied`).",
    _domain_example(errors.NotOwner, "Only the owner may"),
    _domain_example(errors.CrossSiteRequest, "From another site's page"),
    _example("No CSRF token", "permission_denied", "CSRF Failed: CSRF token missing."),
)
UNSUPPORTED_MEDIA_TYPE = _errors(
    "The body is not JSON (`unsupported_media_type`).",
    _example("The body is not JSON", "unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
)


# --- Operations -------------------------------------------------------------

extend_schema_view(
    create=extend_schema(
        operation_id="sessions_create",
        summary="Open a session",
        description=(
            "Opens a session and starts provisioning its instance. Answers at once, before Docker has "
            "finished: the instance's `status` goes `pending` → `provisioning` → `running` (or `failed`)."
        ),
        tags=["sessions"],
        request=SessionCreateSerializer,
        examples=[
            OpenApiExample("default playground", value={"playground_id": "default"}, request_only=True),
        ],
        responses={
            201: SessionSerializer,
            400: _errors(
                "A malformed body, an unknown playground, an image the playground does not offer, or a "
                "duration beyond its maximum.",
                _domain_example(
                    errors.PlaygroundNotAllowed,
                    "No such playground, or not for you",
                    "There is no playground 'nope' that you may use.",
                ),
                IMAGE_NOT_ALLOWED,
                _domain_example(
                    errors.InvalidRequest,
                    "Longer than the playground allows",
                    "duration: at most 14400 seconds in this playground.",
                ),
                INVALID,
                MALFORMED,
            ),
            401: _errors(
                "Only with PLAYGROUND_REQUIRE_LOGIN: the caller is not logged in and sent no API token.",
                _example("Not logged in", "not_authenticated", "Authentication credentials were not provided."),
            ),
            413: _errors(
                "The body is larger than the API accepts (64 KiB).",
                _example("Too large", "request_too_large", "The request body is larger than the API accepts."),
            ),
            415: UNSUPPORTED_MEDIA_TYPE,
            429: _errors(
                "The client (its user, or its IP address) has as many open sessions as it may "
                "(`too_many_sessions`), or created sessions too fast (`throttled`). The `Retry-After` header "
                "says how many seconds to wait.",
                _domain_example(
                    errors.TooManySessions,
                    "Too many open sessions",
                    "You may have 5 sessions open at once; close one first.",
                ),
                _example("Too fast", "throttled", "Request was throttled. Expected available in 42 seconds."),
            ),
            503: _errors(
                "The Docker host runs as many sessions as it may (`out_of_capacity`), or a server the platform "
                "needs is out of reach or saturated (`database_unavailable`, `broker_unavailable`); nothing was "
                "created. The `Retry-After` header says how many seconds to wait before trying again.",
                _domain_example(errors.OutOfCapacity, "Out of capacity"),
            ),
        },
    ),
    list=extend_schema(
        operation_id="sessions_list",
        summary="The caller's sessions",
        description=(
            "The caller's own sessions, newest first (at most 100): a logged-in user's, those this browser "
            "opened (its browser cookie), or the one whose access token is sent as `Authorization: Bearer`. "
            "Staff see every session. Anyone else gets an empty list."
        ),
        tags=["sessions"],
        responses={200: SessionSerializer(many=True)},
    ),
    retrieve=extend_schema(
        operation_id="sessions_retrieve",
        summary="A session and its instance",
        description="The session, its expiry and its instance (status, IP address, image).",
        tags=["sessions"],
        parameters=[SESSION_ID],
        responses={200: SessionSerializer, 404: NOT_FOUND},
    ),
    destroy=extend_schema(
        operation_id="sessions_destroy",
        summary="Close a session",
        description=(
            "Closes the session and answers with it, now `closed`; its container, volume and network are "
            "removed within seconds. Closing a closed session changes nothing."
        ),
        tags=["sessions"],
        parameters=[SESSION_ID],
        responses={200: SessionSerializer, 403: NOT_OWNER, 404: NOT_FOUND},
    ),
)(SessionViewSet)

# `extend` and `terminal` are routed by hand in urls.py, not declared with
# @action, so extend_schema_view does not see them; they are defined on
# SessionViewSet itself, so annotating the methods directly leaks nowhere.
extend_schema(
    operation_id="sessions_extend",
    summary="Extend a session",
    description=(
        "Moves the session's expiry later by `duration` seconds (the playground's default duration "
        "when the body is empty), never beyond the playground's maximum lifetime."
    ),
    tags=["sessions"],
    parameters=[SESSION_ID],
    request=SessionExtendSerializer,
    responses={
        200: SessionSerializer,
        400: _errors("A malformed body.", INVALID, MALFORMED),
        403: NOT_OWNER,
        404: NOT_FOUND,
        409: _errors(
            "The session is closed (`session_closed`) or already lasts as long as it may (`cannot_extend`).",
            SESSION_CLOSED,
            _domain_example(
                errors.CannotExtend,
                "Already at its maximum lifetime",
                "The session already lasts as long as it may (until 2026-01-01T12:00:00+00:00).",
            ),
        ),
        415: UNSUPPORTED_MEDIA_TYPE,
    },
)(SessionViewSet.extend)

extend_schema(
    operation_id="sessions_exec",
    summary="Run a command in the instance",
    description=(
        "Runs `cmd` (a program and its arguments; no shell unless you name one, e.g. "
        '`["sh", "-c", "docker ps"]`) in the running instance as its learner, in the learner\'s home, '
        "with `stdin` as its input and killed after `timeout` seconds (60 by default). Needs the owner "
        "or a read-write share, as typing in the terminal does.\n\n"
        "By default the answer streams as it comes, one JSON object a line (`application/x-ndjson`): "
        '`{"stream": "stdout" | "stderr", "data": "..."}`, then `{"exit_code": N, "timed_out": false}`; '
        'past PLAYGROUND_EXEC_OUTPUT_MAX bytes of output the last line is `{"exit_code": null, '
        '"truncated": true}`, and if the instance stops answering `{"exit_code": null, "error": '
        '"exec_failed", "message": "..."}`. With `?wait=1` the command is run to its end and the answer '
        "is one JSON object. A command never outlives its session: its timeout ends with the session at the latest."
    ),
    tags=["sessions"],
    parameters=[
        SESSION_ID,
        OpenApiParameter("wait", str, enum=["0", "1"], description="1: answer once, when the command has ended"),
    ],
    request=ExecSerializer,
    responses={
        (200, "application/json"): ExecResultSerializer,
        (200, "application/x-ndjson"): OpenApiTypes.STR,
        400: _errors("A malformed body.", INVALID, MALFORMED),
        404: NOT_FOUND,
        409: _errors(
            "The session is closed (`session_closed`) or its instance does not run (`instance_not_running`).",
            SESSION_CLOSED,
            _domain_example(errors.InstanceNotRunning, "The instance is still starting"),
        ),
        413: _errors(
            "The body is larger than 1 MiB.",
            _example("Too large", "request_too_large", "The request body is larger than the API accepts."),
        ),
        415: UNSUPPORTED_MEDIA_TYPE,
        429: _errors(
            "The session runs PLAYGROUND_EXEC_PER_SESSION commands already (`too_many_commands`); "
            "`Retry-After` says when to try again.",
            _domain_example(errors.TooManyCommands, "Too many commands"),
        ),
        503: _errors(
            "The web process runs as many commands as it may (`exec_busy`); `Retry-After` says when to try again.",
            _example(
                "Busy", "exec_busy", "The playground runs as many commands as it may; try again in a few seconds."
            ),
        ),
    },
)(SessionViewSet.exec)

extend_schema(
    operation_id="sessions_stats",
    summary="What the instance uses",
    description=(
        "The running instance's CPU (rate and time), memory and its limit, processes and their limit, "
        "network and disk traffic, and the use of its inner `/var/lib/docker`, measured now (in about "
        "half a second; viewers asking within 2 seconds of each other share one measure). Anyone who may see "
        "the session may ask. The storage figures are null when the instance's disk is not a bounded disk "
        "of its own."
    ),
    tags=["sessions"],
    parameters=[SESSION_ID],
    responses={
        200: InstanceStatsSerializer,
        404: NOT_FOUND,
        409: _errors(
            "The session is closed (`session_closed`) or its instance does not run (`instance_not_running`).",
            SESSION_CLOSED,
            _domain_example(errors.InstanceNotRunning, "The instance is still starting"),
        ),
    },
)(SessionViewSet.stats)

PORTS_409 = _errors(
    "The session is closed (`session_closed`) or its instance does not run (`instance_not_running`).",
    SESSION_CLOSED,
    _domain_example(errors.InstanceNotRunning, "The instance is still starting"),
)

extend_schema(
    operation_id="sessions_ports",
    summary="The instance's listening ports",
    description=(
        "The TCP ports something in the running instance listens on, other than on loopback: the ports its "
        "containers publish (`docker run -p 8080:80`) and the instance's own servers, as they are now (within "
        "a second). Each is served by the platform at `url` (`/sessions/{id}/ports/{port}/`, HTTP and "
        "WebSockets); `open_url` is for a browser, and leads to the port's own host name "
        "(`{port}-{id}.{PLAYGROUND_PORTS_DOMAIN}`) where the operator set one. Only the session's owner "
        "and its share links' holders may open a port, unless it is `public`. Anyone who may see the "
        "session may ask."
    ),
    tags=["sessions"],
    parameters=[SESSION_ID],
    responses={200: PortSerializer(many=True), 404: NOT_FOUND, 409: PORTS_409},
)(SessionViewSet.ports)

extend_schema(
    operation_id="sessions_ports_publish",
    summary="Make a port public, or private again",
    description=(
        "`public: true` lets anyone with the port's link open it (a demo for the room); `false` keeps it to "
        "the session's owner and share links' holders again. The port need not listen yet. Needs the owner "
        "or a read-write share."
    ),
    tags=["sessions"],
    parameters=[SESSION_ID],
    request=PortPublicSerializer,
    responses={
        200: PortSerializer,
        400: _errors("A malformed body.", INVALID, MALFORMED),
        403: NOT_OWNER,
        404: NOT_FOUND,
        415: UNSUPPORTED_MEDIA_TYPE,
    },
)(SessionViewSet.publish_port)
# --- Files ------------------------------------------------------------------

FILE_ACCESS = (
    "Needs the owner or a read-write share, as typing in the terminal does. Only the learner's home and `/tmp` "
    "can be reached: a relative path starts in the home, and a path with `..`, or leading elsewhere by its "
    "spelling or through a symbolic link, is refused (`400`); links are resolved by the instance, as its "
    "learner, and never followed past that."
)
PATH_PARAMETER_TEXT = "A path in the instance: relative to the learner's home, or absolute under it or /tmp."
FILE_PATH_ERRORS = _errors(
    "A malformed path (`invalid_path`, `invalid_request`), or one leading outside the learner's home and /tmp "
    "(`path_not_allowed`).",
    _domain_example(errors.InvalidPath, "A `..` in the path", "A path may not contain `..`."),
    _domain_example(errors.PathNotAllowed, "Outside the home and /tmp"),
    _domain_example(
        errors.PathNotAllowed,
        "A symbolic link leading out",
        "/home/learner/etc leads to /etc through a symbolic link: only the learner's home and /tmp can be reached.",
    ),
)
FILE_NOT_FOUND = _errors(
    "No such session (`session_not_found`), or nothing at that path (`file_not_found`).",
    SESSION_NOT_FOUND,
    _domain_example(errors.FileNotFound, "Nothing there", "There is no /home/learner/nope.txt in the instance."),
)
FILE_FORBIDDEN = _errors(
    "The caller holds a read-only share (`not_owner`), the learner may not read or write that path "
    "(`file_permission_denied`), or the request came from another site's page (`cross_site_request`).",
    _domain_example(errors.NotOwner, "A read-only share"),
    _domain_example(errors.FilePermissionDenied, "The learner may not", "The learner may not read /tmp/secret."),
)
FILE_CONFLICT = _errors(
    "The session is closed (`session_closed`), its instance does not run (`instance_not_running`), or the "
    "instance refused to write a file (`file_transfer_failed`: a directory of that name, a full disk).",
    SESSION_CLOSED,
    _domain_example(errors.InstanceNotRunning, "The instance is still starting"),
    _domain_example(
        errors.FileTransferFailed,
        "The instance refused",
        "The files could not be written: tar: notes: Cannot open: Is a directory",
    ),
)
TOO_MANY_TRANSFERS = _errors(
    "The session runs PLAYGROUND_EXEC_PER_SESSION commands and transfers already (`too_many_commands`); "
    "`Retry-After` says when to try again.",
    _domain_example(errors.TooManyCommands, "Too many at once"),
)
TRANSFERS_BUSY = _errors(
    "The web process runs as many commands and transfers as it may (`exec_busy`); `Retry-After` says when.",
    _example("Busy", "exec_busy", "The playground runs as many commands as it may; try again in a few seconds."),
)

extend_schema(
    operation_id="sessions_files_upload",
    summary="Upload files into the instance",
    description=(
        "Writes files into the running instance, owned by its learner, replacing files (or symbolic links, "
        "never followed) of the same name. The body is either the file itself (any type but multipart, "
        "`application/octet-stream` for instance), written at `path`, whose directory must exist; or "
        "`multipart/form-data` with any number of files, each written under its own name in the directory "
        "`path` (the home by default). At most PLAYGROUND_UPLOAD_MAX bytes (100 MB) in all: past it `413`, "
        "and nothing is written. " + FILE_ACCESS
    ),
    tags=["files"],
    parameters=[
        SESSION_ID,
        OpenApiParameter(
            "path",
            str,
            description=PATH_PARAMETER_TEXT + " The file's path for a raw body (needed); the directory for multipart.",
        ),
    ],
    request={"application/octet-stream": OpenApiTypes.BINARY, "multipart/form-data": FilesUploadSerializer},
    responses={
        201: FilesWrittenSerializer,
        400: FILE_PATH_ERRORS,
        403: FILE_FORBIDDEN,
        404: FILE_NOT_FOUND,
        409: FILE_CONFLICT,
        413: _errors(
            "The files are larger than PLAYGROUND_UPLOAD_MAX bytes in all (`upload_too_large`).",
            _domain_example(
                errors.UploadTooLarge,
                "Too large",
                "The upload is larger than the playground accepts (104857600 bytes).",
            ),
        ),
        415: _errors(
            "A form-encoded body sent on the strength of a cookie, whose CSRF check reads it as a form "
            "(`unsupported_media_type`): a page sends its files as multipart.",
            _example(
                "Form-encoded",
                "unsupported_media_type",
                'Unsupported media type "application/x-www-form-urlencoded" in request.',
            ),
        ),
        429: TOO_MANY_TRANSFERS,
        503: TRANSFERS_BUSY,
    },
)(FileViewSet.upload)

extend_schema(
    operation_id="sessions_files_download",
    summary="Download a file or a directory",
    description=(
        "Streams the file at `path` (`application/octet-stream`), or the directory as a tar whose members "
        "start with its name (`application/x-tar`; what the learner cannot read in it is left out), with a "
        "`Content-Disposition` naming it. " + FILE_ACCESS
    ),
    tags=["files"],
    parameters=[SESSION_ID, OpenApiParameter("path", str, required=True, description=PATH_PARAMETER_TEXT)],
    responses={
        (200, "application/octet-stream"): OpenApiTypes.BINARY,
        (200, "application/x-tar"): OpenApiTypes.BINARY,
        400: FILE_PATH_ERRORS,
        403: FILE_FORBIDDEN,
        404: FILE_NOT_FOUND,
        409: _errors(
            "The session is closed (`session_closed`) or its instance does not run (`instance_not_running`).",
            SESSION_CLOSED,
            _domain_example(errors.InstanceNotRunning, "The instance is still starting"),
        ),
        429: TOO_MANY_TRANSFERS,
        503: TRANSFERS_BUSY,
    },
)(FileViewSet.download)

extend_schema(
    operation_id="sessions_files_list",
    summary="List a directory",
    description=(
        "The entries of the directory at `path` (the home by default), sorted by name, at most 10000: "
        "each one's name, type (`file`, `dir`, `symlink`, `other`; links are not followed), size and "
        "modification time. " + FILE_ACCESS
    ),
    tags=["files"],
    parameters=[SESSION_ID, OpenApiParameter("path", str, description=PATH_PARAMETER_TEXT + " The home by default.")],
    responses={
        200: FileListSerializer,
        400: FILE_PATH_ERRORS,
        403: FILE_FORBIDDEN,
        404: FILE_NOT_FOUND,
        409: _errors(
            "The session is closed (`session_closed`) or its instance does not run (`instance_not_running`).",
            SESSION_CLOSED,
            _domain_example(errors.InstanceNotRunning, "The instance is still starting"),
        ),
    },
)(FileViewSet.contents)

extend_schema(
    operation_id="sessions_terminal",
    summary="The session's terminal",
    description="The instance's information and the URL of its WebSocket (`ws_url`).",
    tags=["sessions"],
    parameters=[SESSION_ID],
    responses={
        200: TerminalSerializer,
        404: _errors(
            "No such session (`session_not_found`), or it has no instance (`no_instance`).",
            SESSION_NOT_FOUND,
            _domain_example(errors.SessionHasNoInstance, "The session has no instance"),
        ),
    },
)(SessionViewSet.terminal)

extend_schema_view(
    list=extend_schema(
        operation_id="instances_list",
        summary="The session's instances",
        description="At most one: a session has one instance at a time.",
        tags=["instances"],
        parameters=[SESSION_ID],
        responses={200: InstanceSerializer(many=True), 404: NOT_FOUND},
    ),
    create=extend_schema(
        operation_id="instances_create",
        summary="Give the session a new instance",
        description=(
            "Refused (`409`) while the session has its instance; after that instance was deleted, creates a new one."
        ),
        tags=["instances"],
        parameters=[SESSION_ID],
        request=InstanceCreateSerializer,
        responses={
            201: InstanceSerializer,
            400: _errors(
                "A malformed body, or an image the playground does not offer.",
                IMAGE_NOT_ALLOWED,
                UNKNOWN_FIELD,
                MALFORMED,
            ),
            403: NOT_OWNER,
            404: NOT_FOUND,
            409: _errors(
                "The session already has its instance (`session_already_has_instance`), or is closed "
                "(`session_closed`).",
                _domain_example(errors.SessionAlreadyHasInstance, "The session already has its instance"),
                SESSION_CLOSED,
            ),
            415: UNSUPPORTED_MEDIA_TYPE,
        },
    ),
    retrieve=extend_schema(
        operation_id="instances_retrieve",
        summary="One instance",
        description="Kept, like the other instance routes, for clients of the multi-instance API.",
        tags=["instances"],
        parameters=[SESSION_ID, INSTANCE_NAME],
        responses={200: InstanceSerializer, 404: INSTANCE_NOT_FOUND},
    ),
    destroy=extend_schema(
        operation_id="instances_destroy",
        summary="Remove an instance",
        description=(
            "Starts removing the instance and answers with it, now `terminating`; once it is gone the "
            "session may get a new one."
        ),
        tags=["instances"],
        parameters=[SESSION_ID, INSTANCE_NAME],
        responses={202: InstanceSerializer, 403: NOT_OWNER, 404: INSTANCE_NOT_FOUND},
    ),
)(InstanceViewSet)

SHARE_NOT_FOUND = _errors(
    "No such session (`session_not_found`), or no such share link of it (`share_not_found`).",
    SESSION_NOT_FOUND,
    _domain_example(errors.ShareNotFound, "No such share link"),
)

extend_schema_view(
    list=extend_schema(
        operation_id="shares_list",
        summary="The session's share links",
        description="Every share link of the session, revoked and expired ones included; their tokens are not shown.",
        tags=["shares"],
        parameters=[SESSION_ID],
        responses={200: ShareSerializer(many=True), 403: NOT_OWNER, 404: NOT_FOUND},
    ),
    create=extend_schema(
        operation_id="shares_create",
        summary="Share the session's terminal",
        description=(
            "Makes a share link: `read-only` lets its holder watch the terminal (and read the session), "
            "`read-write` also type in it. It lasts `expires_in` seconds, at most as long as the session may. "
            "The answer holds the link's `url` (the page, with the token after `#share=`, which browsers never "
            "send to a server) and its `token` (for API clients: `Authorization: Bearer <token>`), this once."
        ),
        tags=["shares"],
        parameters=[SESSION_ID],
        request=ShareCreateSerializer,
        examples=[OpenApiExample("watch for an hour", value={"mode": "read-only", "expires_in": 3600})],
        responses={
            201: ShareSerializer,
            400: _errors("A malformed body.", INVALID, MALFORMED),
            403: NOT_OWNER,
            404: NOT_FOUND,
            409: _errors("The session is closed.", SESSION_CLOSED),
            415: UNSUPPORTED_MEDIA_TYPE,
        },
    ),
    destroy=extend_schema(
        operation_id="shares_destroy",
        summary="Revoke a share link",
        description="Ends the link at once: the terminals opened with it close. Revoking twice changes nothing.",
        tags=["shares"],
        parameters=[SESSION_ID, SHARE_ID],
        responses={204: None, 403: NOT_OWNER, 404: SHARE_NOT_FOUND},
    ),
)(ShareViewSet)

# Routed by hand in urls.py, like extend and terminal.
extend_schema(
    operation_id="shares_redeem",
    summary="Redeem a share link in this browser",
    description=(
        "What the session page does with a link's `#share=` token: keeps it in this browser's (signed, "
        "HttpOnly) shares cookie, so that the page and its terminal open."
    ),
    tags=["shares"],
    request=ShareRedeemSerializer,
    responses={
        200: ShareRedeemedSerializer,
        400: _errors("A malformed body.", INVALID, MALFORMED),
        403: NOT_OWNER,
        404: _errors("The link is unknown, expired or revoked.", _domain_example(errors.ShareNotFound, "No such link")),
        415: UNSUPPORTED_MEDIA_TYPE,
    },
)(ShareViewSet.redeem)
