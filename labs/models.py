"""Templates, guided labs and the workshops that use them.

A template gives a session its playground, files put into the instance at
start, a setup script run as the learner before the session is handed out,
and steps shown beside the terminal, each with an optional check (which
unlocks the next step) and solve script. An event is a workshop: a template,
a time window, a number of seats and an invite link.
"""

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

CHECK_TIMEOUT = 30  # seconds a step's check or solve script may run
# Seconds a setup script may run at most: it runs within the provisioning
# job's time limit (sessions_app.tasks.PROVISION_SOFT_TIME_LIMIT).
SETUP_TIMEOUT_MAX = 90


def new_event_id() -> str:
    return secrets.token_hex(8)


def new_invite_code() -> str:
    """The secret part of an event's invite link."""
    return secrets.token_urlsafe(16)


class Template(models.Model):
    """What a session of a guided lab starts with (see the module's docstring)."""

    slug = models.SlugField(primary_key=True, max_length=50)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    playground = models.ForeignKey(
        "sessions_app.Playground",
        on_delete=models.PROTECT,
        related_name="templates",
        help_text="Its image, limits, duration, egress and images to preload.",
    )
    files = models.JSONField(
        default=list,
        blank=True,
        help_text=("Files put into the learner's home at start: [{path, content (base64), mode}, ...]."),
    )
    setup = models.TextField(
        blank=True, help_text="A bash script run as the learner, in its home, before the session is handed out."
    )
    setup_timeout = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(SETUP_TIMEOUT_MAX)],
        help_text=f"Seconds the setup script may run (at most {SETUP_TIMEOUT_MAX}).",
    )
    prepared = models.PositiveIntegerField(
        default=0, help_text="Sessions of this template kept started and set up ahead of demand."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Step(models.Model):
    """One step of a template: Markdown beside the terminal, and how to check and solve it."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(help_text="1 for the first step.")
    title = models.CharField(max_length=200)
    text = models.TextField(
        blank=True, help_text="Markdown; a code block with `run` in its info string is typed in on click."
    )
    check_script = models.TextField(
        blank=True, help_text=f"A bash script run as the learner ({CHECK_TIMEOUT} s at most): exit 0 passes the step."
    )
    solve_script = models.TextField(blank=True, help_text="A bash script that does the step for the learner.")

    class Meta:
        ordering = ["template", "position"]
        constraints = [models.UniqueConstraint(fields=["template", "position"], name="one_step_per_position")]

    def __str__(self) -> str:
        return f"{self.template_id} step {self.position}"


class Event(models.Model):
    """A workshop: learners who follow its invite link within its time window each take a seat."""

    id = models.CharField(primary_key=True, max_length=32, default=new_event_id, editable=False)
    title = models.CharField(max_length=200)
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="events")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    seats = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    invite_code = models.CharField(max_length=64, unique=True, default=new_invite_code, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="playground_events",
        help_text="The trainer: sees the dashboard (as do staff).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.title


class Seat(models.Model):
    """A learner's place in an event, and the session it gave them."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="seat_set")
    session = models.OneToOneField("sessions_app.Session", on_delete=models.CASCADE, related_name="seat")
    name = models.CharField(max_length=100, blank=True, help_text="What the learner called themselves.")
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["taken_at"]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.name or self.session_id}"


class CheckRun(models.Model):
    """One run of a step's check in a session: whether it passed, and what it printed."""

    session = models.ForeignKey("sessions_app.Session", on_delete=models.CASCADE, related_name="check_runs")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="runs")
    passed = models.BooleanField()
    output = models.TextField(blank=True)
    ran_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-ran_at"]

    def __str__(self) -> str:
        return f"{self.session_id} step {self.step.position}: {'passed' if self.passed else 'failed'}"
