"""The admin of templates (with their steps, and an import from a .zip), workshops, seats and check runs."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from labs import importer
from labs.models import CheckRun, Event, Seat, Step, Template


class StepInline(admin.StackedInline):
    model = Step
    extra = 0
    fields = ["position", "title", "text", "check_script", "solve_script"]


class ImportForm(forms.Form):
    archive = forms.FileField(
        label=".zip of a template",
        help_text="A folder holding template.yaml, its steps and scripts, zipped (see the README). "
        "A template of the same slug is updated.",
    )


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "playground", "step_count", "prepared", "updated_at", "landing_page"]
    search_fields = ["slug", "title"]
    readonly_fields = ["created_at", "updated_at", "landing_page"]
    fields = [
        "slug",
        "title",
        "description",
        "playground",
        "prepared",
        "setup",
        "setup_timeout",
        "files",
        "landing_page",
        "created_at",
        "updated_at",
    ]
    inlines = [StepInline]
    change_list_template = "admin/labs/template/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("playground").annotate(step_total=Count("steps"))

    @admin.display(description="steps", ordering="step_total")
    def step_count(self, template: Template) -> int:
        return template.step_total

    @admin.display(description="landing page")
    def landing_page(self, template: Template) -> str:
        if not template.pk:
            return "-"
        return format_html('<a href="/t/{}" target="_blank" rel="noopener">/t/{}</a>', template.slug, template.slug)

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="labs_template_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Import (or update) a template from an uploaded .zip: the service checks it whole first."""
        if not self.has_add_permission(request) or not self.has_change_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
        problems: list[importer.Problem] = []
        if form.is_bound and form.is_valid():
            try:
                template = importer.template_import(form.cleaned_data["archive"])
            except importer.TemplateFormatError as exc:
                problems = exc.problems
            else:
                self.message_user(request, f"Imported {template.slug}: {template.title}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:labs_template_change", args=[template.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a template",
            "opts": self.model._meta,
            "form": form,
            "problems": problems,
        }
        return TemplateResponse(request, "admin/labs/template/import.html", context)


class EventForm(forms.ModelForm):
    class Meta:
        model = Event
        fields = ["title", "template", "starts_at", "ends_at", "seats", "owner"]

    def clean(self):
        cleaned = super().clean()
        starts_at, ends_at = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "An event ends after it starts.")
        return cleaned


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    form = EventForm
    list_display = ["title", "template", "window", "seats_taken", "invite_link", "dashboard"]
    list_filter = ["template"]
    search_fields = ["title"]
    readonly_fields = ["id", "invite_link", "dashboard", "created_at"]
    fields = ["title", "template", "starts_at", "ends_at", "seats", "owner", "id", "invite_link", "dashboard"]
    list_select_related = ["template"]
    date_hierarchy = "starts_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(seats_taken_count=Count("seat_set"))

    @admin.display(description="window", ordering="starts_at")
    def window(self, event: Event) -> str:
        return f"{event.starts_at:%Y-%m-%d %H:%M} – {event.ends_at:%Y-%m-%d %H:%M}"

    @admin.display(description="seats taken", ordering="seats_taken_count")
    def seats_taken(self, event: Event) -> str:
        taken = getattr(event, "seats_taken_count", None)
        if taken is None:
            taken = event.seat_set.count()
        return f"{taken} / {event.seats}"

    @admin.display(description="invite link")
    def invite_link(self, event: Event) -> str:
        if not event.pk:
            return "-"
        link = f"/e/{event.invite_code}"
        return format_html(
            '<input type="text" readonly value="{}" size="{}" class="invite-link" aria-label="invite link">',
            link,
            len(link),
        )

    @admin.display(description="dashboard")
    def dashboard(self, event: Event) -> str:
        if not event.pk:
            return "-"
        return format_html('<a href="/events/{}/dashboard" target="_blank" rel="noopener">Dashboard</a>', event.pk)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the platform writes as learners go; the admin only looks."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Seat)
class SeatAdmin(ReadOnlyAdmin):
    list_display = ["event", "name", "session", "taken_at"]
    list_filter = ["event"]
    search_fields = ["name", "session__id"]
    list_select_related = ["event", "session"]


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = ["session", "step", "passed", "ran_at"]
    list_filter = ["passed", "step__template"]
    search_fields = ["session__id"]
    list_select_related = ["session", "step", "step__template"]
