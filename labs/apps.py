from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "labs"
    verbose_name = "Templates and workshops"

    def ready(self) -> None:
        from labs import (
            events_schema,  # noqa: F401 (the workshop routes' OpenAPI descriptions)
            steps_schema,  # noqa: F401 (the step routes' OpenAPI descriptions)
        )
