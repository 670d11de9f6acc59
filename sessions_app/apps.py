from django.apps import AppConfig
from django.conf import settings


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Playground sessions"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from playground import broker
        from sessions_app import metrics, schema  # noqa: F401 (schema: the API's OpenAPI descriptions)

        metrics.register(REGISTRY)
        if settings.CELERY_BROKER_URL.startswith(("redis:", "rediss:")):
            broker.register_redis()
        if settings.CELERY_BROKER_URL.startswith("playground-filesystem:"):
            options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
            broker.register({key: options[key] for key in ("data_folder_in", "processed_folder", "control_folder")})
