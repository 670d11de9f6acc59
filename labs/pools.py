"""How many sessions of each template the pool keeps prepared (sessions_app.services.prepared)."""

from labs.models import Template


def prepared_targets() -> dict[Template, int]:
    """Each template with sessions to prepare ahead, and how many."""
    return {
        template: template.prepared for template in Template.objects.filter(prepared__gt=0).select_related("playground")
    }
