"""The bodies of the workshop routes: joining one, and its trainer's view of the seats."""

from django.core.validators import RegexValidator
from rest_framework import serializers

from labs.events import OUTPUT_SHOWN, Outcome, SeatRow
from labs.models import Event, Seat
from sessions_app.models import Instance, Session
from sessions_app.serializers import SessionSerializer, StrictCharField, StrictSerializer, terminal_page_url


class EventJoinSerializer(StrictSerializer):
    """A learner's request for a seat."""

    invite = StrictCharField(
        max_length=Event._meta.get_field("invite_code").max_length,
        help_text="The invite code: the last part of the workshop's link `/e/<invite>`.",
    )
    name = StrictCharField(
        max_length=Seat._meta.get_field("name").max_length,
        help_text="What the learner calls themselves; their trainer sees it.",
        # A line break or an escape in a name would forge lines of the log,
        # and rows of the dashboard's CSV: no control characters (Unicode's Cc).
        validators=[
            RegexValidator(r"^[^\x00-\x1f\x7f-\x9f]*$", "A name cannot hold control characters such as line breaks.")
        ],
    )


class EventJoinedSerializer(SessionSerializer):
    """What joining answers: the learner's session (for the schema; the view adds the token to its body)."""

    access_token = serializers.CharField(
        allow_null=True,
        help_text=(
            "The session's owner credential for API clients, shown this once; null when the learner had "
            "joined before, and owns the session already (by their login or their browser's cookie)."
        ),
    )

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "access_token"]


class SeatCheckRunSerializer(serializers.Serializer):
    step = serializers.IntegerField(source="step.position", help_text="the step's position, 1 for the first")
    passed = serializers.BooleanField()
    ran_at = serializers.DateTimeField()
    output = serializers.SerializerMethodField(help_text="the end of what the check printed")

    def get_output(self, run) -> str:
        return run.output[-OUTPUT_SHOWN:]


class SeatSerializer(serializers.Serializer):
    """A seat and how its learner gets on (from a labs.events.SeatRow)."""

    name = serializers.CharField()
    session_id = serializers.CharField()
    session_status = serializers.ChoiceField(
        choices=Session.Status.choices, help_text="an open session past its expiry counts as expired"
    )
    instance_status = serializers.ChoiceField(choices=Instance.Status.choices, allow_null=True)
    current_step = serializers.IntegerField(
        allow_null=True, help_text="the first step whose check has not passed; null when every check passed"
    )
    steps = serializers.IntegerField(help_text="how many steps the template has")
    done = serializers.BooleanField()
    progress = serializers.CharField(help_text='"3 of 5", or "done"')
    taken_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField(allow_null=True, help_text="the last terminal input")
    last_check = SeatCheckRunSerializer(allow_null=True, help_text="the latest check run in the session, of any step")
    terminal_url = serializers.SerializerMethodField(help_text="the learner's terminal, read-only for the trainer")

    def get_terminal_url(self, row: SeatRow) -> str:
        return terminal_page_url(self.context["request"], row.session_id)


class EventSerializer(serializers.ModelSerializer):
    template = serializers.CharField(source="template_id")
    seats_taken = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = ["id", "title", "template", "starts_at", "ends_at", "seats", "seats_taken"]

    def get_seats_taken(self, event: Event) -> int:
        return self.context["seats_taken"]


class EventSeatsSerializer(serializers.Serializer):
    """What GET /events/{id}/seats answers."""

    event = EventSerializer()
    seats = SeatSerializer(many=True)


def event_seats_data(request, event: Event, rows: list[SeatRow]) -> dict:
    context = {"request": request, "seats_taken": len(rows)}
    return EventSeatsSerializer({"event": event, "seats": rows}, context=context).data


class RefusalSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    error = serializers.CharField(help_text="why it was left as it is, such as `cannot_extend`")
    message = serializers.CharField()


class OutcomeSerializer(serializers.Serializer):
    """What extending or closing every seat's session answers."""

    changed = serializers.ListField(child=serializers.CharField(), help_text="the sessions it extended or closed")
    unchanged = RefusalSerializer(many=True, help_text="the open sessions it left as they were, and why")

    @classmethod
    def of(cls, outcome: Outcome) -> dict:
        return cls({"changed": outcome.changed, "unchanged": outcome.unchanged}).data
