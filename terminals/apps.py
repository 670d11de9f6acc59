from django.apps import AppConfig


class TerminalsConfig(AppConfig):
    name = "terminals"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from terminals import metrics

        metrics.register(REGISTRY)
