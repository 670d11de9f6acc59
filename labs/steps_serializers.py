"""What the step routes answer: a session's steps, and how a check or a solution went."""

from rest_framework import serializers

from labs.markdown import step_html
from labs.steps import StepState


class CheckRunSerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    output = serializers.CharField(help_text="what the check printed (stdout and stderr), its end when long")
    ran_at = serializers.DateTimeField()


class StepSerializer(serializers.Serializer):
    """One step of the session's lab, and where the session stands on it (from a labs.steps.StepState)."""

    position = serializers.IntegerField(source="step.position", help_text="1 for the first step")
    title = serializers.CharField(source="step.title")
    html = serializers.SerializerMethodField(
        help_text="the step's text, Markdown rendered to safe HTML; a runnable block's Run button carries its "
        "command in `data-run`"
    )
    has_check = serializers.SerializerMethodField(help_text="a check passes this step (and unlocks the next)")
    has_solve = serializers.SerializerMethodField(help_text="a solution can do this step for the learner")
    unlocked = serializers.BooleanField(help_text="every step before it is done (passed, or has no check)")
    passed = serializers.BooleanField(help_text="its check passed in this session")
    last_check = CheckRunSerializer(allow_null=True, help_text="the latest run of its check in this session")

    def get_html(self, state: StepState) -> str:
        return step_html(state.step.text)

    def get_has_check(self, state: StepState) -> bool:
        return bool(state.step.check_script.strip())

    def get_has_solve(self, state: StepState) -> bool:
        return bool(state.step.solve_script.strip())


class StepCheckSerializer(serializers.Serializer):
    """How a step's check went (a labs.steps.CheckResult)."""

    passed = serializers.BooleanField(help_text="it ended with exit code 0 within its time")
    output = serializers.CharField(help_text="what it printed (stdout and stderr), its end when long")
    timed_out = serializers.BooleanField(help_text="killed when its time ran out")
    next_unlocked = serializers.BooleanField(help_text="the next step is unlocked now (false when there is none)")


class StepSolveSerializer(serializers.Serializer):
    """How a step's solution went (a labs.steps.SolveResult)."""

    exit_code = serializers.IntegerField(help_text="0 when it succeeded; 137 when it was killed")
    output = serializers.CharField(help_text="what it printed (stdout and stderr), its end when long")
    timed_out = serializers.BooleanField(help_text="killed when its time ran out")
