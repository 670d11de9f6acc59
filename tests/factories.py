"""Rows for tests, made in one place.

Each factory makes a valid row with sensible defaults; a test names only
what it cares about. For rows made through the API (provisioned on the fake
backend) use the `open_session` fixture of tests/sessions_app/conftest.py.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.authtoken.models import Token

from labs.models import Event, Step, Template
from sessions_app.models import DockerHost, Instance, Playground, Session, hash_secret

IMAGE = "playground-dind:latest"


def make_host(name: str = "local", **fields) -> DockerHost:
    """The Docker host of that name with these fields; "local", the first one, is made by a migration
    (made again if a flush removed it)."""
    host, _ = DockerHost.objects.get_or_create(name=name, defaults={"url": settings.DOCKER_HOST})
    if fields:
        DockerHost.objects.filter(pk=host.pk).update(**fields)
        host.refresh_from_db()
    return host


def make_playground(playground_id: str = "default", **fields) -> Playground:
    """The playground of that id with these fields (made if a flush removed it), and the first Docker host."""
    make_host()
    playground, _ = Playground.objects.get_or_create(pk=playground_id)
    if fields:
        Playground.objects.filter(pk=playground_id).update(**fields)
        playground.refresh_from_db()
    return playground


def make_session(
    *,
    status: str = Session.Status.OPEN,
    expires_in: timedelta = timedelta(hours=1),
    playground_id: str = "default",
    instance_status: str | None = None,
    access_token: str | None = None,
    **fields,
) -> Session:
    """A session, and an instance in instance_status when one is given; whoever
    holds access_token owns it."""
    make_playground(playground_id)
    if access_token is not None:
        fields["access_token_hash"] = hash_secret(access_token)
    session = Session.objects.create(
        playground_id=playground_id, status=status, expires_at=timezone.now() + expires_in, **fields
    )
    if instance_status is not None:
        make_instance(session=session, status=instance_status)
    return session


def make_instance(*, session: Session | None = None, status: str = Instance.Status.PENDING, **fields) -> Instance:
    """An instance, of a new open session unless one is given, on the first Docker host unless told."""
    fields.setdefault("host", make_host())
    return Instance.objects.create(session=session or make_session(), image=IMAGE, status=status, **fields)


def make_user(username: str = "learner", *, password: str | None = None, **fields) -> User:
    return User.objects.create_user(username, password=password, **fields)


def make_token(user: User | None = None) -> Token:
    """An API token, of a new user unless one is given."""
    return Token.objects.create(user=user or make_user())


def make_template(
    slug: str = "lab", *, playground_id: str = "default", steps: list[dict] | None = None, **fields
) -> Template:
    """A template of a guided lab, on that playground, with steps made from dicts of Step's fields."""
    make_playground(playground_id)
    template = Template.objects.create(
        slug=slug, title=fields.pop("title", f"The {slug} lab"), playground_id=playground_id, **fields
    )
    for position, step in enumerate(steps or [], start=1):
        make_step(template, position, **step)
    return template


def make_step(template: Template, position: int, **fields) -> Step:
    """A step of the template; its title says its position unless given."""
    return Step.objects.create(
        template=template, position=position, title=fields.pop("title", f"Step {position}"), **fields
    )


def make_event(
    *,
    template=None,
    starts_in: timedelta = timedelta(0),
    lasts: timedelta = timedelta(hours=2),
    seats: int = 3,
    **fields,
):
    """An event of the template (a new one unless given), starting starts_in from now."""
    starts_at = timezone.now() + starts_in
    return Event.objects.create(
        title=fields.pop("title", "Docker basics"),
        template=template or make_template(),
        starts_at=starts_at,
        ends_at=starts_at + lasts,
        seats=seats,
        **fields,
    )
