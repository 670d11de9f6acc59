from django.contrib import admin, messages

from sessions_app import services
from sessions_app.models import Instance, Playground, Session


@admin.register(Playground)
class PlaygroundAdmin(admin.ModelAdmin):
    list_display = ["id", "description", "image", "default_duration", "max_duration", "memory_limit_mb", "pids_limit"]


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
        "container_id",
        "container_name",
        "docker_host",
        "ip_address",
        "created_at",
        "started_at",
        "running_at",
        "terminated_at",
    ]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "playground",
        "owner",
        "client_address",
        "created_at",
        "expires_at",
        "instance_status",
    ]
    list_filter = ["status", "playground"]
    search_fields = ["id"]
    readonly_fields = ["id", "status", "created_at", "closed_at", "client_address", "client_agent"]
    inlines = [InstanceInline]
    actions = ["close_sessions"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("playground", "owner", "instance")

    @admin.display(description="instance")
    def instance_status(self, session: Session) -> str:
        try:
            return session.instance.status
        except Instance.DoesNotExist:
            return "-"

    @admin.action(description="Close the selected sessions")
    def close_sessions(self, request, queryset) -> None:
        for session in queryset.filter(status=Session.Status.OPEN):
            services.session_close(session_id=session.pk)
        self.message_user(request, "The selected sessions are closing.", messages.SUCCESS)
