from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from sessions_app.backends.base import Backend


@cache
def _backend_for(path: str) -> Backend:
    return import_string(path)()


def get_backend() -> Backend:
    """The backend named by PLAYGROUND_BACKEND, one per process."""
    return _backend_for(settings.PLAYGROUND_BACKEND)
