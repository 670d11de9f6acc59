from functools import cache
from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.utils.module_loading import import_string

from sessions_app.backends.base import Backend

if TYPE_CHECKING:
    from sessions_app.models import DockerHost, Instance


@cache
def _backend_for(path: str, engine: "Engine") -> Backend:
    return import_string(path)(engine)


class Engine(NamedTuple):
    """What a backend needs to know of its Docker host: its name, its address and TLS folder.

    A key of the backends kept per process: a host whose address an admin
    changes gets a new backend.
    """

    name: str
    url: str
    tls_path: str = ""


def engine_of(host: "DockerHost | None") -> Engine:
    """The engine of a host, at the address this process reaches it by.

    PLAYGROUND_ENGINE_URLS gives a host's worker, next to it, another
    address than the one everyone else uses (its own socket rather than
    TLS over the network). No host: the platform's only engine of old,
    DOCKER_HOST.
    """
    if host is None:
        return Engine("", settings.DOCKER_HOST)
    url = settings.PLAYGROUND_ENGINE_URLS.get(host.name)
    if url:
        return Engine(host.name, url)
    return Engine(host.name, host.url, host.tls_path)


def get_backend(host: "DockerHost | None" = None) -> Backend:
    """The backend (PLAYGROUND_BACKEND) of a Docker host, one per host and process."""
    return _backend_for(settings.PLAYGROUND_BACKEND, engine_of(host))


def backend_for(instance: "Instance") -> Backend:
    """The backend of the host an instance was placed on."""
    return get_backend(instance.host if instance.host_id else None)
