from datetime import UTC, datetime, timedelta

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sessions_app.models import Instance, Session, Share
from sessions_app.selectors import session_instance

MAX_DURATION_SECONDS = 7 * 24 * 3600  # far above any playground's maximum


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSlugField(StrictCharField, serializers.SlugField):
    pass


class StrictIntegerField(serializers.IntegerField):
    """An integer field that refuses strings, floats and booleans."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A boolean field that takes JSON's true and false only."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error and not a silent default."""

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return attrs


class SessionCreateSerializer(StrictSerializer):
    playground_id = StrictSlugField(max_length=50, required=False, help_text='"default" unless a template is given')
    template = StrictSlugField(
        max_length=50, required=False, help_text="a guided lab's slug: its playground, files, setup and steps"
    )
    image = StrictCharField(max_length=200, required=False)
    duration = StrictIntegerField(min_value=60, max_value=MAX_DURATION_SECONDS, required=False)

    def validate_duration(self, value: int) -> timedelta:
        return timedelta(seconds=value)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "template" in attrs and "playground_id" in attrs:
            raise serializers.ValidationError(
                {"template": ["A template brings its own playground: give one or the other."]}
            )
        return attrs


class SessionExtendSerializer(StrictSerializer):
    duration = StrictIntegerField(min_value=60, max_value=MAX_DURATION_SECONDS, required=False)

    def validate_duration(self, value: int) -> timedelta:
        return timedelta(seconds=value)


# A command's size, so that its body fits DATA_UPLOAD_MAX_MEMORY_SIZE even
# with every character escaped (6 bytes each): longer input goes in files.
MAX_ARGUMENTS = 64
MAX_ARGUMENT = 2048
MAX_STDIN = 32768


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "maxLength": MAX_ARGUMENT, "pattern": "^[^\\x00]*$"},
        "minItems": 1,
        "maxItems": MAX_ARGUMENTS,
    }
)
class ArgumentsField(serializers.Field):
    """A command: a program's name, then its arguments; strings without NUL.

    One flat error message, whichever argument is wrong (the error body's
    `details` hold lists of messages per field)."""

    default_error_messages = {
        "invalid": (
            f"A list of strings: a program's name, then its arguments (at most {MAX_ARGUMENTS}, "
            f"each at most {MAX_ARGUMENT} characters, none with NUL)."
        )
    }

    def to_internal_value(self, data):
        if (
            not isinstance(data, list)
            or not 1 <= len(data) <= MAX_ARGUMENTS
            or not all(isinstance(argument, str) and len(argument) <= MAX_ARGUMENT for argument in data)
            or any("\x00" in argument for argument in data)
        ):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class ExecSerializer(StrictSerializer):
    cmd = ArgumentsField()
    stdin = StrictCharField(max_length=MAX_STDIN, required=False, default="", allow_blank=True, trim_whitespace=False)
    timeout = StrictIntegerField(
        min_value=1, max_value=settings.PLAYGROUND_EXEC_TIMEOUT_MAX, required=False, default=60
    )


class ExecResultSerializer(serializers.Serializer):
    """What `?wait=1` answers (for the documentation; views build it as a dict)."""

    stdout = serializers.CharField()
    stderr = serializers.CharField()
    exit_code = serializers.IntegerField(allow_null=True, help_text="null when the output was truncated")
    timed_out = serializers.BooleanField(help_text="killed when its timeout ran out")
    truncated = serializers.BooleanField(
        help_text="the output passed PLAYGROUND_EXEC_OUTPUT_MAX; the rest was not read"
    )


class InstanceStatsSerializer(serializers.Serializer):
    """What GET /sessions/{id}/stats answers (for the documentation; the view answers a dict)."""

    cpu_percent = serializers.FloatField(help_text="of one CPU, over the last quarter second (200: two CPUs busy)")
    cpu_seconds = serializers.FloatField(help_text="CPU time since the instance started")
    memory_bytes = serializers.IntegerField(help_text="in use, without the page cache it could drop")
    memory_limit_bytes = serializers.IntegerField()
    pids = serializers.IntegerField()
    pids_limit = serializers.IntegerField()
    network_rx_bytes = serializers.IntegerField()
    network_tx_bytes = serializers.IntegerField()
    disk_read_bytes = serializers.IntegerField()
    disk_write_bytes = serializers.IntegerField()
    storage_used_bytes = serializers.IntegerField(allow_null=True, help_text="of the inner /var/lib/docker")
    storage_size_bytes = serializers.IntegerField(allow_null=True)


class EpochDateTimeField(serializers.DateTimeField):
    """Seconds since the epoch, shown as an ISO 8601 time in UTC."""

    def to_representation(self, value: float) -> str:
        return super().to_representation(datetime.fromtimestamp(value, UTC))


class FileEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(
        choices=["file", "dir", "symlink", "other"], help_text="a symbolic link is listed as one, not followed"
    )
    size = serializers.IntegerField(help_text="bytes; a symbolic link's is the length of its target")
    mtime = EpochDateTimeField(help_text="when it last changed")


class FileListSerializer(serializers.Serializer):
    """What GET /sessions/{id}/files/list answers."""

    path = serializers.CharField(help_text="the directory's absolute path in the instance, links resolved")
    entries = FileEntrySerializer(many=True, help_text="sorted by name")
    truncated = serializers.BooleanField(help_text="the directory has more entries than the 10000 listed")


class FilesUploadSerializer(serializers.Serializer):
    """A multipart upload (for the documentation: the view reads every file part, whatever its name)."""

    files = serializers.ListField(child=serializers.FileField())


class FileWrittenSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="where it was written in the instance")
    size = serializers.IntegerField()


class FilesWrittenSerializer(serializers.Serializer):
    """What POST /sessions/{id}/files answers."""

    files = FileWrittenSerializer(many=True)


class InstanceCreateSerializer(StrictSerializer):
    image = StrictCharField(max_length=200, required=False)


class ShareCreateSerializer(StrictSerializer):
    mode = serializers.ChoiceField(choices=Share.Mode.choices)
    expires_in = StrictIntegerField(
        min_value=60,
        max_value=MAX_DURATION_SECONDS,
        required=False,
        help_text="Seconds; by default as long as the session may last.",
    )

    def validate_expires_in(self, value: int) -> timedelta:
        return timedelta(seconds=value)


class ShareRedeemSerializer(StrictSerializer):
    token = StrictCharField(max_length=200)


class ShareRedeemedSerializer(serializers.Serializer):
    """What redeeming a share link answers (for the schema; the view builds the dict)."""

    session_id = serializers.CharField()
    mode = serializers.ChoiceField(choices=Share.Mode.choices)
    expires_at = serializers.DateTimeField()
    terminal_url = serializers.CharField()


class ShareSerializer(serializers.ModelSerializer):
    """A share link; its token and URL only in the answer that made it."""

    active = serializers.BooleanField(source="is_active", read_only=True)
    url = serializers.SerializerMethodField()
    token = serializers.SerializerMethodField()

    class Meta:
        model = Share
        fields = ["id", "mode", "created_at", "expires_at", "revoked_at", "active", "url", "token"]

    def get_token(self, share: Share) -> str | None:
        return self.context.get("token")

    def get_url(self, share: Share) -> str | None:
        token = self.context.get("token")
        # In the fragment, which browsers never send: the token stays out of
        # every server's and proxy's logs. The page redeems it.
        return f"{terminal_page_url(self.context['request'], share.session_id)}#share={token}" if token else None


def _iso(moment) -> str | None:
    """A time as DRF's DateTimeField writes it (ISO 8601, UTC as Z)."""
    if moment is None:
        return None
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class InstanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instance
        fields = [
            "name",
            "hostname",
            "status",
            "image",
            "ip_address",
            "docker_host",
            "error",
            "failure_reason",
            "created_at",
            "running_at",
        ]

    def to_representation(self, instance: Instance) -> dict:
        # Written out rather than built from the fields each time: clients
        # poll sessions many times a second, and DRF's field machinery was
        # most of what an answer cost. (The fields above still describe it.)
        return {
            "name": instance.name,
            "hostname": instance.hostname,
            "status": instance.status,
            "image": instance.image,
            "ip_address": instance.ip_address,
            # The Docker host's name, not its engine's address.
            "docker_host": instance.host.name if instance.host_id else "",
            "error": instance.error,
            "failure_reason": instance.failure_reason,
            "created_at": _iso(instance.created_at),
            "running_at": _iso(instance.running_at),
        }


class SessionSerializer(serializers.ModelSerializer):
    session_id = serializers.CharField(source="id")
    playground_id = serializers.CharField()
    template = serializers.CharField(source="template_id", allow_null=True, help_text="the guided lab's slug, if any")
    hostname = serializers.SerializerMethodField()
    instance = serializers.SerializerMethodField()
    terminal_url = serializers.SerializerMethodField()
    ws_url = serializers.SerializerMethodField()
    access = serializers.SerializerMethodField()

    class Meta:
        model = Session
        fields = [
            "session_id",
            "playground_id",
            "template",
            "hostname",
            "status",
            "created_at",
            "expires_at",
            "closed_at",
            "instance",
            "terminal_url",
            "ws_url",
            "access",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=["owner", "read-write", "read-only"]))
    def get_access(self, session: Session) -> str:
        """What the caller may do: everything (owner), use the terminal (read-write), or watch (read-only)."""
        return self.context["access"].label

    def get_hostname(self, session: Session) -> str:
        return self.context["request"].get_host().rsplit(":", 1)[0]

    @extend_schema_field(InstanceSerializer(allow_null=True))
    def get_instance(self, session: Session) -> dict | None:
        instance = session_instance(session=session)
        return InstanceSerializer(instance).data if instance else None

    def get_terminal_url(self, session: Session) -> str:
        return terminal_page_url(self.context["request"], session.id)

    def get_ws_url(self, session: Session) -> str:
        return websocket_url(self.context["request"], session.id)

    def to_representation(self, session: Session) -> dict:
        # As InstanceSerializer's: the answer every poll gets, written out.
        instance = session_instance(session=session)
        return {
            "session_id": session.id,
            "playground_id": session.playground_id,
            "template": session.template_id,
            "hostname": self.get_hostname(session),
            "status": session.status,
            "created_at": _iso(session.created_at),
            "expires_at": _iso(session.expires_at),
            "closed_at": _iso(session.closed_at),
            "instance": InstanceSerializer().to_representation(instance) if instance else None,
            "terminal_url": self.get_terminal_url(session),
            "ws_url": self.get_ws_url(session),
            "access": self.get_access(session),
        }


class TerminalSerializer(InstanceSerializer):
    session_id = serializers.CharField()
    ws_url = serializers.SerializerMethodField()

    class Meta(InstanceSerializer.Meta):
        fields = ["session_id", *InstanceSerializer.Meta.fields, "ws_url"]

    def get_ws_url(self, instance: Instance) -> str:
        return websocket_url(self.context["request"], instance.session_id)

    def to_representation(self, instance: Instance) -> dict:
        return {
            "session_id": instance.session_id,
            **super().to_representation(instance),
            "ws_url": self.get_ws_url(instance),
        }


class PortPublicSerializer(StrictSerializer):
    port = StrictIntegerField(min_value=1, max_value=65535)
    public = StrictBooleanField()


class PortSerializer(serializers.Serializer):
    """One listening port of the instance (the view answers dicts of these fields)."""

    port = serializers.IntegerField()
    public = serializers.BooleanField(help_text="anyone with its link may open it, not only the session's people")
    url = serializers.URLField(help_text="the port through the platform, under the session's path")
    open_url = serializers.URLField(
        help_text="for a browser: opens the port at its own host name where the operator set "
        "PLAYGROUND_PORTS_DOMAIN, else at `url`"
    )


def port_urls(request, session_id: str, port: int) -> dict:
    return {
        "url": request.build_absolute_uri(f"/sessions/{session_id}/ports/{port}/"),
        "open_url": request.build_absolute_uri(f"/p/{session_id}/ports/{port}"),
    }


def terminal_page_url(request, session_id: str) -> str:
    return request.build_absolute_uri(f"/p/{session_id}")


def websocket_url(request, session_id: str) -> str:
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{request.get_host()}/sessions/{session_id}/ws"
