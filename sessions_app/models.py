import hashlib
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

INSTANCE_HOSTNAME = "node1"

# What a session id or an instance name may look like: short and URL-safe.
# Anything else (a NUL byte, which PostgreSQL refuses outright, or a path)
# names nothing.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_plain_name(value: str) -> bool:
    return isinstance(value, str) and bool(_PLAIN_NAME.fullmatch(value))


def new_session_id() -> str:
    """An unguessable, URL-safe session id: 128 random bits as 32 hex digits.

    Knowing the id is what grants access to a session, as in Play with Docker.
    Hex keeps it usable verbatim in Docker container, volume and network names.
    """
    return secrets.token_hex(16)


def new_storage_token() -> str:
    """The name of an instance's disk and volume: random, so that nothing an
    instance can see of them (a loop device's backing file is readable by
    every container on the host) gives away a session id."""
    return secrets.token_hex(16)


def new_secret() -> str:
    """A credential (a session's access token, a share link's token): 256 random bits."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the database keeps of a credential: whoever reads it cannot use it."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Playground(models.Model):
    """A kind of session: which images it may run, what limits apply, and who may use it."""

    class Access(models.TextChoices):
        EVERYONE = "everyone"
        STAFF = "staff"
        GROUPS = "groups", "staff and members of its groups"

    class Egress(models.TextChoices):
        """What may leave its instances, enforced by the host firewall per session network (sessions_app/egress.py)."""

        INTERNET = "internet", "the internet (but the host and private networks)"
        MIRROR_ONLY = "mirror-only", "the registry mirror and DNS only"
        NONE = "none", "nothing"

    id = models.SlugField(primary_key=True, max_length=50)
    description = models.CharField(max_length=200, blank=True)
    access = models.CharField(max_length=16, choices=Access.choices, default=Access.EVERYONE)
    groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="playgrounds", help_text="Who may use it when access is 'groups'."
    )
    default_image = models.CharField(max_length=200, blank=True, help_text="Empty: the platform's DIND image.")
    allowed_images = models.JSONField(
        default=list,
        blank=True,
        help_text="Images a client may ask for, besides the default image.",
    )
    default_duration = models.DurationField(default=timedelta(hours=2))
    max_duration = models.DurationField(default=timedelta(hours=4))
    memory_limit_mb = models.PositiveIntegerField(
        default=2048, validators=[MinValueValidator(64)], help_text="Memory limit of each instance, in MiB."
    )
    pids_limit = models.PositiveIntegerField(default=1000, validators=[MinValueValidator(64)])
    cpu_limit = models.DecimalField(
        max_digits=5, decimal_places=2, default=1, help_text="CPUs each instance may use (e.g. 0.5, 2)."
    )
    idle_timeout = models.DurationField(
        null=True,
        blank=True,
        help_text="Close a session after this long without terminal input; empty: never.",
    )
    storage_size = models.CharField(
        max_length=20,
        blank=True,
        default="10G",
        validators=[RegexValidator(r"^\d+[kKmMgGtT]?$", "A size such as 10G.")],
        help_text=(
            "Size of each instance's inner /var/lib/docker (e.g. 10G; at least 64M), where the platform can "
            "bound it (see SECURITY.md); empty: unbounded."
        ),
    )
    egress = models.CharField(
        max_length=16,
        choices=Egress.choices,
        default=Egress.INTERNET,
        help_text=(
            "What may leave its instances. Applies to sessions started after a change; "
            "'mirror-only' reaches PLAYGROUND_REGISTRY_MIRROR and DNS, 'none' not even DNS."
        ),
    )
    preload_images = models.JSONField(
        default=list,
        blank=True,
        help_text="Images prepared instances of this playground pull before anyone claims them",
    )

    def __str__(self) -> str:
        return self.id

    @property
    def image(self) -> str:
        return self.default_image or settings.PLAYGROUND_DIND_IMAGE

    def permits_image(self, image: str) -> bool:
        return image == self.image or image in self.allowed_images

    def permits_user(self, user) -> bool:
        if self.access == self.Access.EVERYONE:
            return True
        if not user.is_authenticated:
            return False
        if user.is_staff:
            return True
        return self.access == self.Access.GROUPS and self.groups.filter(pk__in=user.groups.values("pk")).exists()


_HOST_NAME = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,39}$", "Lower-case letters, digits and hyphens, starting with a letter or digit."
)


class DockerHost(models.Model):
    """A Docker engine that runs instances (sessions_app/services/hosts.py).

    Its instances are provisioned, torn down and reconciled by the workers of
    its own queue (`host.<name>`), which run next to it; web processes reach
    it only to attach terminals and run commands. Placement puts a new
    session on the active host with the most free capacity.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "active: takes new sessions"
        DRAINING = "draining", "draining: no new sessions, those it has run to their end"
        DOWN = "down", "down: its sessions are shown failed until it returns"

    name = models.CharField(
        max_length=40, unique=True, validators=[_HOST_NAME], help_text="Its workers' queue is host.<name>."
    )
    url = models.CharField(
        max_length=200,
        help_text="The engine's address: unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host.",
    )
    tls_path = models.CharField(
        max_length=300,
        blank=True,
        help_text="For tcp://: a folder with ca.pem, cert.pem and key.pem (as DOCKER_CERT_PATH), "
        "on every machine of the platform.",
    )
    capacity = models.PositiveIntegerField(default=100, help_text="Sessions it may run at once.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    labels = models.JSONField(default=dict, blank=True, help_text='Free-form, for operators: {"zone": "eu"}.')
    # What its workers last saw of it (services.hosts.host_heartbeat).
    seen_at = models.DateTimeField(null=True, blank=True, help_text="When its engine last answered its worker.")
    checked_at = models.DateTimeField(null=True, blank=True, help_text="When its worker last looked.")
    problem = models.CharField(max_length=300, blank=True, help_text="Why its engine did not answer, if it did not.")
    images = models.JSONField(default=list, blank=True, help_text="The instance images it has, as last seen.")
    down_automatically = models.BooleanField(
        default=False, help_text="Marked down because it stopped answering: active again once it answers."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return host_queue(self.name)


HOST_QUEUE_PREFIX = "host."


def host_queue(name: str) -> str:
    """The Celery queue whose workers, next to the host, do its instances' work."""
    return f"{HOST_QUEUE_PREFIX}{name}"


class Session(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"  # by its user or an admin
        EXPIRED = "expired"  # its time ran out, or it sat idle too long

    id = models.CharField(primary_key=True, max_length=64, default=new_session_id, editable=False)
    playground = models.ForeignKey(Playground, on_delete=models.PROTECT, related_name="sessions")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="playground_sessions"
    )
    # Who else owns it: the browser that opened it (the hash of the id in its
    # signed cookie), and whoever holds its access token (hashed).
    browser_key = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    access_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    client_agent = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    # Not auto_now_add: session_create sets it to the very instant expires_at counts from.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True, help_text="Last terminal input.")
    public_ports = models.JSONField(
        default=list, blank=True, help_text="Ports of the instance that anyone with their link may open."
    )
    template = models.ForeignKey(
        "labs.Template",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sessions",
        help_text="The guided lab it started from: its files, setup and steps.",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def latest_expiry(self):
        """The latest expires_at that extending may reach."""
        return self.created_at + self.playground.max_duration


class Instance(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROVISIONING = "provisioning"
        SETTING_UP = "setting_up"  # its template's files and setup script
        RUNNING = "running"
        FAILED = "failed"
        TERMINATING = "terminating"
        TERMINATED = "terminated"

    # One-to-one: the database's UNIQUE constraint on session_id is what
    # refuses a second instance, whatever races between requests.
    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="instance")
    name = models.CharField(max_length=64, default=INSTANCE_HOSTNAME)
    hostname = models.CharField(max_length=64, default=INSTANCE_HOSTNAME)
    image = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True)
    failure_reason = models.CharField(
        max_length=40, blank=True, help_text="Why it failed, in a word: timeout, setup_failed, host_down…"
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times provisioning was started.")
    provision_seconds = models.FloatField(null=True, blank=True, help_text="From creation to running.")
    container_id = models.CharField(max_length=64, blank=True)
    container_name = models.CharField(max_length=128, blank=True)
    docker_host = models.CharField(max_length=200, blank=True)
    host = models.ForeignKey(
        DockerHost,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="instances",
        help_text="The Docker host it was placed on.",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    storage_token = models.CharField(
        max_length=64, default=new_storage_token, editable=False, help_text="Names its disk and volume."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    set_up_at = models.DateTimeField(
        null=True, blank=True, help_text="When its template's files and setup script were put in place."
    )
    terminated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.session_id})"


class PreparedSession(models.Model):
    """A session to come whose instance is already running, idle, in Docker.

    A new session of the default playground takes one, so that its learner
    does not wait for a container and a Docker daemon to start, and twenty
    sessions opened at once do not queue in the engine. The id is made like
    any session id and stays as secret: only the database and the Docker host
    know it until a session takes it. `spec` records the limits the instance
    was made with; a prepared instance whose playground changed since is
    replaced, never handed out.
    """

    id = models.CharField(primary_key=True, max_length=64, default=new_session_id, editable=False)
    playground = models.ForeignKey(Playground, on_delete=models.CASCADE, related_name="prepared_sessions")
    template = models.ForeignKey(
        "labs.Template", null=True, blank=True, on_delete=models.CASCADE, related_name="prepared_sessions"
    )
    host = models.ForeignKey(DockerHost, null=True, on_delete=models.CASCADE, related_name="prepared_sessions")
    image = models.CharField(max_length=200)
    spec = models.CharField(max_length=64)
    storage_token = models.CharField(max_length=64, default=new_storage_token, editable=False)
    ready = models.BooleanField(default=False, help_text="Its instance runs and may be handed out.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.id

    def instance(self) -> Instance:
        """Its instance as the backend sees it: unsaved, with an unsaved session."""
        return Instance(
            session=Session(id=self.pk, playground=self.playground, template=self.template),
            host=self.host,
            image=self.image,
            storage_token=self.storage_token,
        )


class SessionSubnet(models.Model):
    """The address range a session's network holds, drawn from PLAYGROUND_SESSION_SUBNETS.

    Keyed by session id, not by a foreign key: a prepared session's network
    is made before any Session row exists, and the session that takes it
    takes its id. The unique subnet is what keeps two racing workers, of any
    engine, from taking the same range (sessions_app/subnets.py).
    """

    subnet = models.CharField(max_length=18, unique=True)  # "10.128.0.16/28"
    session_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.subnet} ({self.session_id})"


def new_share_id() -> str:
    return secrets.token_hex(8)


class Share(models.Model):
    """A link that lets someone else watch a session's terminal, or use it.

    Its token is shown once, when the link is made; the database keeps only
    its hash. A share ends when it expires or its owner revokes it.
    """

    class Mode(models.TextChoices):
        READ_ONLY = "read-only"
        READ_WRITE = "read-write"

    id = models.CharField(primary_key=True, max_length=32, default=new_share_id, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="shares")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.mode} share {self.id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
