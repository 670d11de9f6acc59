"""The OpenAPI description of the step routes (applied when the app starts: labs.apps).

Like sessions_app.schema, whose error bodies and parameters it shares: the
examples are built from the domain errors the views raise.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema

from labs.models import CHECK_TIMEOUT
from labs.setup import OUTPUT_KEPT
from labs.steps_serializers import StepCheckSerializer, StepSerializer, StepSolveSerializer
from labs.steps_views import StepViewSet
from sessions_app import errors
from sessions_app.schema import (
    NOT_OWNER,
    SESSION_CLOSED,
    SESSION_ID,
    SESSION_NOT_FOUND,
    _domain_example,
    _errors,
    _example,
)

POSITION = OpenApiParameter("position", int, OpenApiParameter.PATH, description="The step's position: 1 for the first.")

NO_STEPS = _domain_example(errors.SessionHasNoSteps, "A session of no guided lab")
STEPS_NOT_FOUND = _errors(
    "No such session (`session_not_found`), or it is of no guided lab (`no_steps`).", SESSION_NOT_FOUND, NO_STEPS
)
STEP_NOT_FOUND = _errors(
    "No such session (`session_not_found`), it is of no guided lab (`no_steps`), or its lab has no such step "
    "(`step_not_found`).",
    SESSION_NOT_FOUND,
    NO_STEPS,
    _domain_example(errors.StepNotFound, "No such step"),
)
RUNS_IN_THE_INSTANCE = (
    f"It runs as the learner, in its home, with bash, for {CHECK_TIMEOUT} seconds at most; what it prints is "
    f"answered (its last {OUTPUT_KEPT} characters). Only an unlocked step's: every step before it is done. "
    "Needs the owner or a read-write share, as typing in the terminal does."
)


def _conflicts(no_script: type[errors.PlaygroundError], summary: str):
    return _errors(
        "The step is locked (`step_locked`) or has no such script (`"
        + no_script.reason
        + "`); or the session is closed (`session_closed`) or its instance does not run (`instance_not_running`).",
        _domain_example(errors.StepLocked, "A step before it is not done"),
        _domain_example(no_script, summary),
        SESSION_CLOSED,
        _domain_example(errors.InstanceNotRunning, "The instance is still starting"),
    )


RUN_NOT_FOUND = _errors(
    "No such session (`session_not_found`), it is of no guided lab (`no_steps`) or has no instance (`no_instance`), "
    "or its lab has no such step (`step_not_found`).",
    SESSION_NOT_FOUND,
    NO_STEPS,
    _domain_example(errors.StepNotFound, "No such step"),
    _domain_example(errors.SessionHasNoInstance, "The session has no instance"),
)
TOO_MANY = _errors(
    "The session runs PLAYGROUND_EXEC_PER_SESSION commands already (`too_many_commands`); "
    "`Retry-After` says when to try again.",
    _domain_example(errors.TooManyCommands, "Too many commands"),
)
BUSY = _errors(
    "The web process runs as many commands as it may (`exec_busy`); `Retry-After` says when to try again.",
    _example("Busy", "exec_busy", "The playground runs as many commands as it may; try again in a few seconds."),
)

extend_schema(
    operation_id="sessions_steps_list",
    summary="The steps of the session's lab",
    description=(
        "The steps of the guided lab the session was opened from, in order: each one's text as HTML (Markdown "
        "rendered on the server; raw HTML in it shows as text), whether it has a check and a solution, whether "
        "it is unlocked (step 1 is; each next one once the step before it is done: it has no check, or its "
        "check passed in this session) and passed, and its latest check. Anyone who may see the session may ask."
    ),
    tags=["steps"],
    parameters=[SESSION_ID],
    responses={200: StepSerializer(many=True), 404: STEPS_NOT_FOUND},
)(StepViewSet.list)

extend_schema(
    operation_id="sessions_steps_check",
    summary="Check a step",
    description=(
        "Runs the step's check in the running instance: exit code 0 passes the step, which unlocks the next. "
        "Every run is recorded (the latest shows in the steps' list). " + RUNS_IN_THE_INSTANCE
    ),
    tags=["steps"],
    parameters=[SESSION_ID, POSITION],
    request=None,
    responses={
        200: StepCheckSerializer,
        403: NOT_OWNER,
        404: RUN_NOT_FOUND,
        409: _conflicts(errors.StepHasNoCheck, "Nothing to check"),
        429: TOO_MANY,
        503: BUSY,
    },
)(StepViewSet.check_step)

extend_schema(
    operation_id="sessions_steps_solve",
    summary="Solve a step",
    description=(
        "Runs the step's solution in the running instance, doing the step for the learner; its check then says "
        "whether it worked. Nothing is recorded. " + RUNS_IN_THE_INSTANCE
    ),
    tags=["steps"],
    parameters=[SESSION_ID, POSITION],
    request=None,
    responses={
        200: StepSolveSerializer,
        403: NOT_OWNER,
        404: RUN_NOT_FOUND,
        409: _conflicts(errors.StepHasNoSolve, "No solution"),
        429: TOO_MANY,
        503: BUSY,
    },
)(StepViewSet.solve_step)
