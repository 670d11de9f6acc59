"""Whether a page's origin is this site's own (or one the operator trusts)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def origin_allowed(origin: str, host: str) -> bool:
    """Whether a page of `origin` (an Origin header) belongs to this site, served as `host`."""
    origin = origin.strip().lower()
    if origin in {trusted.lower() for trusted in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    parsed = urlsplit(origin)
    return parsed.scheme in {"http", "https"} and bool(host) and parsed.netloc == host.strip().lower()


def host_allowed(host: str) -> bool:
    """Whether a Host header names this site (ALLOWED_HOSTS), as Django checks requests:
    a DNS rebinding page, whose origin and host are the attacker's name, is not."""
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
