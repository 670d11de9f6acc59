import logging
import re

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from playground.logcontext import log_id
from sessions_app import services
from sessions_app.errors import PlaygroundError
from sessions_app.mirror import MirrorError, mirror_images, stored_size
from sessions_app.models import DockerHost, Instance, Playground, Session, Share
from sessions_app.selectors import session_instance

logger = logging.getLogger(__name__)

# The admin's index, with a link to the registry mirror's page (mirror_view).
admin.site.index_template = "admin/sessions_app/index.html"


@admin.register(Playground)
class PlaygroundAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "description",
        "image",
        "default_duration",
        "max_duration",
        "idle_timeout",
        "memory_limit_mb",
        "pids_limit",
        "cpu_limit",
        "access",
        "egress",
    ]
    filter_horizontal = ["groups"]
    fieldsets = [
        (None, {"fields": ["id", "description"]}),
        ("Who may use it", {"fields": ["access", "groups"]}),
        ("Images", {"fields": ["default_image", "allowed_images", "preload_images"]}),
        ("Network", {"fields": ["egress"]}),
        ("Durations", {"fields": ["default_duration", "max_duration", "idle_timeout"]}),
        ("Limits of each instance", {"fields": ["memory_limit_mb", "pids_limit", "cpu_limit", "storage_size"]}),
    ]


@admin.register(DockerHost)
class DockerHostAdmin(admin.ModelAdmin):
    """Docker hosts: an operator adds one, drains it for maintenance, or marks it down.

    A change of state goes through services.host_set_state: marking a host
    down shows its sessions failed (host_down); making it active again
    reconciles its instances.
    """

    list_display = ["name", "url", "state", "sessions", "capacity", "seen_at", "problem"]
    list_filter = ["state"]
    readonly_fields = ["seen_at", "checked_at", "problem", "images", "down_automatically", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "url", "tls_path", "capacity", "state", "labels"]}),
        (
            "As its workers last saw it",
            {"fields": ["seen_at", "checked_at", "problem", "images", "down_automatically", "created_at"]},
        ),
    ]
    actions = ["drain", "activate", "mark_down"]

    def get_queryset(self, request):
        return services.hosts_counted()

    @admin.display(description="sessions", ordering="used")
    def sessions(self, host: DockerHost) -> int:
        return host.used

    def save_model(self, request, obj: DockerHost, form, change) -> None:
        state = obj.state
        if change and "state" in form.changed_data:
            obj.state = form.initial["state"]  # the service changes it, and what goes with it
        super().save_model(request, obj, form, change)
        if change and "state" in form.changed_data:
            services.host_set_state(host=obj, state=state)
            obj.refresh_from_db()

    def has_delete_permission(self, request, obj: DockerHost | None = None) -> bool:
        # A host that still runs sessions is drained first, not deleted.
        if obj is not None and services.hosts_counted().get(pk=obj.pk).used:
            return False
        return super().has_delete_permission(request, obj)

    def _set(self, request, queryset, state: str) -> None:
        for host in queryset:
            services.host_set_state(host=host, state=state)
        self.message_user(request, f"{queryset.count()} host(s) {state}.", messages.SUCCESS)

    @admin.action(description="Drain: no new sessions, those it has run to their end")
    def drain(self, request, queryset) -> None:
        self._set(request, queryset, DockerHost.State.DRAINING)

    @admin.action(description="Activate: takes new sessions (a host that was down is reconciled)")
    def activate(self, request, queryset) -> None:
        self._set(request, queryset, DockerHost.State.ACTIVE)

    @admin.action(description="Mark down: its sessions are shown failed until it is active again")
    def mark_down(self, request, queryset) -> None:
        self._set(request, queryset, DockerHost.State.DOWN)


# How many of the newest sessions a search by log hash looks through.
LOG_ID_SEARCH_LIMIT = 20_000


class InstanceInline(admin.StackedInline):
    model = Instance
    extra = 0
    can_delete = False
    readonly_fields = [
        "name",
        "hostname",
        "image",
        "status",
        "error",
        "failure_reason",
        "attempts",
        "container_id",
        "container_name",
        "host",
        "docker_host",
        "ip_address",
        "created_at",
        "started_at",
        "running_at",
        "provision_seconds",
        "terminated_at",
    ]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ShareInline(admin.TabularInline):
    model = Share
    extra = 0
    can_delete = False
    fields = ["id", "mode", "created_at", "expires_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # share links are made by the session's owner; their token is shown only then


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "playground",
        "who",
        "created_at",
        "expires_at",
        "instance_status",
        "docker_host",
        "ip_address",
        "terminal",
    ]
    list_filter = ["status", "playground", "instance__status"]
    search_fields = ["id"]
    readonly_fields = [
        "id",
        "status",
        "created_at",
        "closed_at",
        "last_activity_at",
        "client_address",
        "client_agent",
        "terminal",
    ]
    fields = [
        "id",
        "playground",
        "owner",
        "status",
        "created_at",
        "expires_at",
        "closed_at",
        "last_activity_at",
        "client_address",
        "client_agent",
        "terminal",
    ]
    inlines = [InstanceInline, ShareInline]
    actions = ["close_sessions", "extend_sessions", "reprovision_sessions"]
    list_select_related = ["playground", "owner", "instance"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False  # sessions are opened through the API, which also starts their instance

    def get_search_results(self, request, queryset, search_term):
        """Also find a session by the short hash the logs call it by (playground.logcontext)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lower()
        if re.fullmatch(r"[0-9a-f]{10}", term):
            recent = queryset.order_by("-created_at").values_list("pk", flat=True)[:LOG_ID_SEARCH_LIMIT]
            logged = [session_id for session_id in recent if log_id(session_id) == term]
            results = results | queryset.filter(pk__in=logged)
        return results, may_have_duplicates

    def _instance(self, session: Session) -> Instance | None:
        return session_instance(session=session)

    @admin.display(description="owner or client")
    def who(self, session: Session) -> str:
        return str(session.owner) if session.owner else (session.client_address or "-")

    @admin.display(description="instance", ordering="instance__status")
    def instance_status(self, session: Session) -> str:
        instance = self._instance(session)
        return instance.status if instance else "-"

    @admin.display(description="Docker host")
    def docker_host(self, session: Session) -> str:  # the Docker host's name
        instance = self._instance(session)
        return (instance.host.name if instance and instance.host_id else "") or "-"

    @admin.display(description="IP address")
    def ip_address(self, session: Session) -> str:
        instance = self._instance(session)
        return (instance.ip_address if instance else None) or "-"

    @admin.display(description="terminal")
    def terminal(self, session: Session) -> str:
        if not session.is_open:
            return "-"
        url = reverse("terminals:session", args=[session.pk])
        return format_html('<a href="{}" target="_blank" rel="noopener">Open</a>', url)

    def _apply(self, request, queryset, action, done: str) -> None:
        succeeded = 0
        for session_id in queryset.values_list("pk", flat=True):
            try:
                action(session_id=session_id)
                succeeded += 1
            except PlaygroundError as exc:
                self.message_user(request, f"{session_id}: {exc.message}", messages.WARNING)
        if succeeded:
            self.message_user(request, f"{succeeded} session(s) {done}.", messages.SUCCESS)

    @admin.action(description="Close the selected sessions")
    def close_sessions(self, request, queryset) -> None:
        self._apply(request, queryset.filter(status=Session.Status.OPEN), services.session_close, "closing")

    @admin.action(description="Extend the selected sessions (by their playground's default duration)")
    def extend_sessions(self, request, queryset) -> None:
        self._apply(request, queryset, services.session_extend, "extended")

    @admin.action(description="Replace the instance of the selected sessions with a fresh one")
    def reprovision_sessions(self, request, queryset) -> None:
        self._apply(request, queryset, services.instance_reprovision, "getting a fresh instance")


def mirror_view(request: HttpRequest) -> TemplateResponse:
    """What the registry mirror holds, with sizes: a read-only page of the admin (/admin/mirror/)."""
    context = {**admin.site.each_context(request), "title": "Registry mirror", "error": None, "images": []}
    try:
        images = mirror_images()
    except MirrorError as exc:
        logger.warning("The admin's mirror page: %s", exc.log_message)
        context["error"] = f"{exc.message} ({settings.PLAYGROUND_REGISTRY_API})"
    else:
        context["images"] = images
        context["total"] = stored_size(images)
    context["mirror"] = settings.PLAYGROUND_REGISTRY_MIRROR
    context["cap"] = settings.PLAYGROUND_REGISTRY_CAP_MB * 2**20
    return TemplateResponse(request, "admin/sessions_app/mirror.html", context)
